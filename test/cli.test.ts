/** The command line checks every flag before it loads anything (these runs load no model). */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });

describe('command line', () => {
  it.each([
    [['generate', 'Hi', '--method', 'foo'], /--method must be one of ar, speculative, specdiff; got 'foo'/],
    [['generate', 'Hi', '--gamma', 'abc'], /--gamma must be an integer >= 1; got 'abc'/],
    [['generate', 'Hi', '--top-p', '2'], /--top-p must be a number in \(0, 1\]; got '2'/],
    [['generate', 'Hi', '--max-new-tokens', '0'], /--max-new-tokens must be an integer >= 1; got '0'/],
    [['generate', 'Hi', '--schedule', 'sideways'], /--schedule must be one of left-to-right, random/],
    [['generate'], /generate needs a prompt/],
    [['generate', '   '], /generate needs a prompt/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ])('%j is a usage error (exit 2) naming what is allowed, before anything loads', (args, message) => {
    const r = cli(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/loading|adapter:/);
    expect(r.stdout).toBe('');
  });

  it('AR loads no drafter (a missing --drafter folder does not matter) and prints the generated text alone on stdout', () => {
    const r = cli('generate', 'The ship sailed', '--method', 'ar', '--max-new-tokens', '4', '--drafter', 'no/such/folder');
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
    expect(r.stdout).not.toContain('The ship sailed');
    expect(r.stdout).not.toMatch(/tok\/s|target passes/);
    expect(r.stderr).toMatch(/ar: 4 tokens in .* tok\/s/);
  }, 300_000);

  it('--version prints the package version', () => {
    const r = cli('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')).version);
  });
});
