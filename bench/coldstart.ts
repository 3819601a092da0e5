/**
 * npm run bench:coldstart — time to the first generated token from a fresh process, for the CLI
 * (`specdiff generate`, from the built dist/, which starts staged) and for the library (load, warmup,
 * generate; greedy unless --temperature; and staged: warmupStaged, then generate with draftWhen), with Mesa's on-disk
 * shader cache empty (cold) and then as the cold run left it (warm). Each run is a new process with
 * MESA_SHADER_CACHE_DIR and XDG_CACHE_HOME (the kernels that have had first runs, which the CLI and the library
 * runs keep with saveTuning) pointing into its own folder, so nothing else's cache is touched. Needs `npm run build` first.
 *
 *   npm run bench:coldstart [-- --method specdiff] [--max-new-tokens N] [--warm-runs N] [--cache-dir DIR] [--warmup-devices N]
 *       [--series cli,library,staged] [--temperature X] [--top-k K]
 * Sampled runs (--temperature above 0) of the staged series wait for drafting after their first token, as the CLI's do.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import './lib/lavapipe-env.js';

const { values } = parseArgs({
  options: {
    method: { type: 'string', default: 'specdiff' },
    'max-new-tokens': { type: 'string', default: '64' },
    'warm-runs': { type: 'string', default: '2' },
    prompt: { type: 'string', default: 'The ship sailed' },
    /** Use (and keep) this cache folder instead of a fresh one: its first run is cold only if it is empty. */
    'cache-dir': { type: 'string' },
    /** The library run's CreateDeviceOptions.warmupDevices (default: createNodeDevice's, one per core up to 4). */
    'warmup-devices': { type: 'string' },
    /** Which runs: the CLI, the library with the whole warm-up first, the library's staged start. */
    series: { type: 'string', default: 'cli,library,staged' },
    temperature: { type: 'string', default: '0' },
    'top-k': { type: 'string', default: '0' },
  },
});
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const method = values.method!;
const prompt = values.prompt!;
const maxNew = values['max-new-tokens']!;

interface Run {
  /** Process start to the first generated token on stdout. */
  firstTokenMs: number;
  /** Process start to exit. */
  totalMs: number;
  /** The child's own figures (library runs). */
  detail?: Record<string, number>;
}

/** Spawns node with the given args; resolves when stdout first holds more than `skip` characters, and at exit. */
function time(args: string[], cacheDir: string, skip: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, MESA_SHADER_CACHE_DIR: cacheDir, XDG_CACHE_HOME: join(cacheDir, 'home'), XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let first = NaN;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (Number.isNaN(first) && out.length > skip) first = performance.now() - t0;
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      const detail = /^DETAIL (.*)$/m.exec(out)?.[1];
      resolve({ firstTokenMs: first, totalMs: performance.now() - t0, detail: detail ? JSON.parse(detail) : undefined });
    });
  });
}

const temperature = Number(values.temperature);
const topK = Number(values['top-k']);
const cliArgs = ['dist/cli.js', 'generate', prompt, '--method', method, '--max-new-tokens', maxNew, '--temperature', String(temperature), '--top-k', String(topK)];
// The library run: load, warm up with the exact settings, then print the first chunk and timings. Staged, as the CLI
// does: the target and its prefill's and plain steps' kernels first; after the first token, beside the generation,
// the drafters' load and the rest of the kernels (deferDrafters, warmupStaged, draftWhen). Both keep the kernels
// that have had first runs, as README's API section shows (loadTuning, saveTuning).
const libScript = (staged: boolean) => `
const t0 = performance.now();
const { createNodeDevice, defaultCacheDir, dirFolder, loadPipeline, loadTuning, saveTuning } = await import('./dist/node.js');
const device = await createNodeDevice(${values['warmup-devices'] ? `{ warmupDevices: ${Number(values['warmup-devices'])} }` : ''});
loadTuning(device, defaultCacheDir(), 'bench');
const m = (n) => dirFolder('models/' + n);
const pipe = await loadPipeline(device, { target: m('target'), diffusionDrafter: m('drafter-mdlm'), arDrafter: m('drafter-ar') }, { dtype: 'f16', deferDrafters: ${staged} });
const loaded = performance.now();
const opts = { method: ${JSON.stringify(method)}, maxNewTokens: ${Number(maxNew)}, temperature: ${temperature}, topK: ${topK}, waitForDrafting: ${temperature > 0} };
const staged = ${staged} ? await pipe.warmupStaged({ ...opts, prompt: ${JSON.stringify(prompt)} }) : null;
const w = staged ? staged.plain : await pipe.warmup({ ...opts, prompt: ${JSON.stringify(prompt)} });
const warmed = performance.now();
let draftingMs = NaN;
const draftWhen = staged ? () => staged.drafting().then((r) => ((draftingMs = performance.now() - warmed), r)) : undefined;
let first = 0;
const gen = pipe.generate(${JSON.stringify(prompt)}, { ...opts, draftWhen });
for await (const c of gen) { if (!first) { first = performance.now(); process.stdout.write('TOKEN ' + c.text + '\\n'); } }
const r = await gen.result();
await staged?.stop();
saveTuning(device, defaultCacheDir(), 'bench');
const extra = staged ? { draftingAfterWarmupMs: draftingMs, stepsBeforeDrafting: r.stats.stepsBeforeDrafting } : {};
process.stdout.write('DETAIL ' + JSON.stringify({ importAndLoadMs: loaded - t0, warmupMs: warmed - loaded, kernels: w.kernels, compiled: w.compiled, helperDevices: w.helperDevices, firstTokenAfterWarmupMs: first - warmed, compiledDuringGeneration: r.stats.pipelinesCompiled, tokensPerSecond: r.stats.tokensPerSecond, ...extra }) + '\\n');
process.exit(0);
`;
const libArgs = (staged: boolean) => ['--input-type=module', '-e', libScript(staged)];

async function series(name: string, args: string[], skip: number): Promise<void> {
  const given = values['cache-dir'];
  const dir = given ?? mkdtempSync(join(tmpdir(), 'specdiff-shader-cache-'));
  try {
    const runs: Array<[string, Run]> = [];
    runs.push([given ? 'first' : 'cold', await time(args, dir, skip)]);
    for (let i = 0; i < Number(values['warm-runs']); i++) runs.push(['warm', await time(args, dir, skip)]);
    for (const [kind, r] of runs) {
      const detail = r.detail ? `  ${Object.entries(r.detail).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(1)}`).join(', ')}` : '';
      console.log(`${name.padEnd(8)} ${kind.padEnd(5)} first token ${(r.firstTokenMs / 1000).toFixed(2).padStart(7)} s, exit ${(r.totalMs / 1000).toFixed(2).padStart(7)} s${detail}`);
    }
  } finally {
    if (!given) rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`time to first token, ${method}, temperature ${temperature}${topK ? `, top-k ${topK}` : ''}, prompt ${JSON.stringify(prompt)}, ${maxNew} new tokens; cold = empty Mesa shader cache`);
// The CLI echoes the prompt before generating: the first token is what comes after it.
// The CLI writes the prompt to stderr and the generated text alone to stdout: its first byte is the first token.
const wanted = values.series!.split(',');
if (wanted.includes('cli')) await series('cli', cliArgs, 0);
if (wanted.includes('library')) await series('library', libArgs(false), 0);
if (wanted.includes('staged')) await series('staged', libArgs(true), 0);
