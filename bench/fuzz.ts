/**
 * npm run fuzz — mutates small checkpoint folders (config.json, model.safetensors, tokenizer.json or
 * vocab.json + merges.txt, an MDLM drafter) and loads each with loadPipeline, counting loads, typed
 * errors, other errors, hangs and leaked GPU bytes (bench/lib/fuzz.ts). The cases run in a child
 * process: one that blocks the event loop past the watchdog is killed, counted as a hang, and the run
 * goes on from the next case. Exits 1 if any case ended in another error, a hang or a leak.
 *
 *   npm run fuzz [-- --cases N] [--seed S] [--hang-ms MS] [--case I (replays one case)]
 */
import { fork } from 'node:child_process';
import { createNodeDevice } from '../src/node.js';
import { emptyCounts, fixtures, runCase, runFuzz, tally, type CaseResult, type FuzzCounts } from './lib/fuzz.js';
import './lib/lavapipe-env.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new RangeError(`--${name} needs a number`);
  return v;
}

const cases = arg('cases', 100_000);
const seed = arg('seed', Date.now() % 2 ** 31);
const hangMs = arg('hang-ms', 5000);
// A blocked event loop sends nothing: the child is killed this long after its last message.
const WATCHDOG_MS = Math.max(10_000, 5 * hangMs);
// Starting a child (a device, the warm-up's shader compiles) can take long on a busy machine.
const STARTUP_MS = 300_000;

if (process.argv.includes('--child')) {
  const device = await createNodeDevice();
  await runFuzz(device, { seed, cases, hangMs, from: arg('from', 0), onReady: () => process.send!('ready'), onCase: (c) => process.send!(c) });
  device.destroy();
  process.exit(0);
} else if (process.argv.includes('--case')) {
  const device = await createNodeDevice();
  console.log(await runCase(device, fixtures(), seed, arg('case', 0)));
  device.destroy();
} else {
  const counts = emptyCounts();
  const t0 = performance.now();
  const line = (c: FuzzCounts) =>
    `${c.cases} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${c.loaded} loaded, ${c.typed} typed errors, ${c.other} other errors, ${c.hangs} hangs, ${c.leakedBytes} leaked GPU bytes (${c.leaks} cases)`;
  console.log(`fuzzing model loading: ${cases} cases, seed ${seed}, a hang is a case using over ${hangMs} ms of CPU or giving no result within ${WATCHDOG_MS} ms (then killed)`);
  let next = 0;
  while (next < cases) {
    next = await runChild(next, cases - next, counts, line);
  }
  console.log(line(counts));
  console.log('typed errors by class:', JSON.stringify(counts.byType));
  for (const [kind, list] of Object.entries(counts.examples)) for (const e of list) console.log(`${kind}: ${e}`);
  process.exit(counts.other + counts.hangs + counts.leaks > 0 ? 1 : 0);
}

/** Runs cases from `from` in a child; returns the index to go on from (past a killed case). */
function runChild(from: number, n: number, counts: FuzzCounts, line: (c: FuzzCounts) => string): Promise<number> {
  return new Promise((resolve) => {
    const child = fork(process.argv[1], ['--child', '--seed', String(seed), '--cases', String(n), '--from', String(from), '--hang-ms', String(hangMs)], { execArgv: process.execArgv });
    let next = from;
    let timer = setTimeout(kill, STARTUP_MS);
    function kill() {
      child.kill('SIGKILL');
      const c: CaseResult = { index: next, outcome: 'killed', detail: `killed: no result within ${WATCHDOG_MS} ms`, ms: WATCHDOG_MS, cpuMs: 0, leakedBytes: 0 };
      tally(counts, c, seed, hangMs);
      next++;
    }
    child.on('message', (c: CaseResult | 'ready') => {
      clearTimeout(timer);
      timer = setTimeout(kill, WATCHDOG_MS);
      if (c === 'ready') return;
      tally(counts, c, seed, hangMs);
      next = c.index + 1;
      if (next % 5000 === 0) console.log(line(counts));
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(next);
    });
  });
}
