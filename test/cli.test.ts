/** The command line checks every flag before it loads anything (these runs load no model). */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeTinyFolders } from './e2e/tiny-folders.js';

const ROOT = new URL('..', import.meta.url).pathname;
const ARGS = ['--import', 'tsx', 'src/cli.ts'];
// The CLI's default cache folder (what it keeps per adapter) lies in a folder of these tests, not the user's.
const CACHE_HOME = mkdtempSync(join(tmpdir(), 'specdiff-cli-home-'));
const ENV = { ...process.env, XDG_CACHE_HOME: CACHE_HOME };
const cli = (...args: string[]) => spawnSync(process.execPath, [...ARGS, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000, env: ENV });
/** The same, leaving the event loop free (for a server in this process). */
const cliAsync = (...args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [...ARGS, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000, env: ENV }, (e, stdout, stderr) => resolve({ status: e ? Number(e.code ?? 1) : 0, stdout, stderr })),
  );

afterAll(() => rmSync(CACHE_HOME, { recursive: true, force: true }));

describe('command line', () => {
  it.each([
    [['generate', 'Hi', '--method', 'foo'], /--method must be one of ar, speculative, specdiff; got 'foo'/],
    [['generate', 'Hi', '--gamma', 'abc'], /--gamma must be an integer >= 1; got 'abc'/],
    [['generate', 'Hi', '--top-p', '2'], /--top-p must be a number in \(0, 1\]; got '2'/],
    [['generate', 'Hi', '--max-new-tokens', '0'], /--max-new-tokens must be an integer >= 1; got '0'/],
    [['generate', 'Hi', '--schedule', 'sideways'], /--schedule must be one of left-to-right, random/],
    [['generate', 'Hi', '--verification', 'lenient'], /--verification must be one of block, token; got 'lenient'/],
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

  it('greedy SpecDiff starts with plain target steps while the drafter loads and compiles, drafts after, and exits cleanly, cold and warm, keeping the kernels it compiled', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'specdiff-cli-staged-'));
    const kept = join(cache, 'specdiff');
    const run = (tokens: string) =>
      spawnSync(process.execPath, [...ARGS, 'generate', 'The ship sailed', '--max-new-tokens', tokens, '--json', '--cache-dir', kept], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 300_000,
        env: { ...ENV, MESA_SHADER_CACHE_DIR: join(cache, 'mesa') },
      });
    try {
      for (const [kind, tokens] of [['cold', '16'], ['warm', '200']]) {
        const r = run(tokens);
        expect(r.status, `${kind}: ${r.stderr.slice(-500)}`).toBe(0);
        const { stats } = JSON.parse(r.stdout);
        expect(stats.generatedTokens).toBe(Number(tokens));
        expect(stats.stepsBeforeDrafting, kind).toBeGreaterThan(0);
        if (kind === 'warm') expect(stats.draftedTokens).toBeGreaterThan(0);
        const files = readdirSync(join(kept, 'tuning'));
        expect(files).toHaveLength(1);
        // The plain steps' kernels and the drafting ones the second stage ran before the process ended.
        const { firstRuns } = JSON.parse(readFileSync(join(kept, 'tuning', files[0]), 'utf8'));
        expect(firstRuns.length, kind).toBeGreaterThan(10);
      }
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  }, 300_000);

  it('a sampled SpecDiff run starts staged, takes one plain step, waits for the drafter, and a seed gives the same tokens cold and warm', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'specdiff-cli-sampled-'));
    const run = () =>
      spawnSync(process.execPath, [...ARGS, 'generate', 'The ship sailed', '--temperature', '0.8', '--top-k', '50', '--seed', '3', '--max-new-tokens', '24', '--json', '--cache-dir', join(cache, 'specdiff')], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 300_000,
        env: { ...ENV, MESA_SHADER_CACHE_DIR: join(cache, 'mesa') },
      });
    try {
      const [cold, warm] = [run(), run()].map((r) => {
        expect(r.status, r.stderr.slice(-500)).toBe(0);
        return JSON.parse(r.stdout);
      });
      expect(warm.tokens).toEqual(cold.tokens);
      for (const { stats } of [cold, warm]) {
        expect(stats.stepsBeforeDrafting).toBe(1);
        expect(stats.draftedTokens).toBeGreaterThan(0);
        expect(stats.draftingWaitMs).toBeGreaterThan(0);
      }
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  }, 300_000);

  it('a URL target: one labelled progress line per file and model, each ending at 100 %; a second run reads the files from the cache', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'specdiff-cli-url-'));
    await writeTinyFolders(join(dir, 'models'), { tokenizerJson: true });
    let requests = 0;
    const server = createServer(async (req, res) => {
      requests++;
      const body = await readFile(join(dir, 'models', req.url ?? '')).catch(() => null);
      if (body) res.writeHead(200, { 'content-length': body.length }).end(body);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}/target`;
    const run = () => cliAsync('generate', 'The ship', '--method', 'ar', '--max-new-tokens', '2', '--target', target, '--cache-dir', join(dir, 'cache'));
    const bar = (label: string, tail: string) => new RegExp(`^${label} +\\[#{30}\\] 100% ${tail}$`, 'm');
    try {
      const first = await run();
      expect(first.status, first.stderr).toBe(0);
      for (const file of ['tokenizer.json', 'config.json', 'model.safetensors']) expect(first.stderr).toMatch(bar(`target: ${file}`, '[\\d.]+ [KM]B'));
      expect(first.stderr).toMatch(bar('target weights to the GPU', '[\\d.]+ [KM]B'));
      const served = requests;
      const second = await run();
      expect(second.status, second.stderr).toBe(0);
      for (const file of ['tokenizer.json', 'config.json', 'model.safetensors']) expect(second.stderr).toMatch(bar(`target: ${file}`, '[\\d.]+ [KM]B \\(cached\\)'));
      expect(requests).toBe(served);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('--autotune keeps its choices per adapter in the cache folder: later runs restore them, and --autotune times no shape again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'specdiff-cli-tune-'));
    try {
      await writeTinyFolders(join(dir, 'models'), { tokenizerJson: true });
      const args = ['generate', 'The ship', '--method', 'ar', '--max-new-tokens', '2', '--target', join(dir, 'models', 'target'), '--cache-dir', join(dir, 'cache'), '--autotune'];
      const first = cli(...args);
      expect(first.status, first.stderr).toBe(0);
      const shapes = Number(/autotuned (\d+) matmul shapes/.exec(first.stderr)?.[1]);
      expect(shapes).toBeGreaterThan(0);
      expect(first.stderr).toMatch(/kept the choices in .*tuning/);
      const second = cli(...args);
      expect(second.status, second.stderr).toBe(0);
      expect(second.stderr).toContain(`restored ${shapes} matmul choices measured earlier on this adapter`);
      expect(second.stderr).toMatch(/autotuned 0 matmul shapes/);
      const untuned = cli(...args.slice(0, -1));
      expect(untuned.status, untuned.stderr).toBe(0);
      expect(untuned.stderr).toContain(`restored ${shapes} matmul choices measured earlier on this adapter`);
      expect(untuned.stderr).not.toMatch(/autotuned/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('--version prints the package version', () => {
    const r = cli('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')).version);
  });
});
