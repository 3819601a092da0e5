/**
 * npm run fuzz — mutates small checkpoint folders (config.json, model.safetensors, tokenizer.json or
 * vocab.json + merges.txt, an MDLM drafter) and loads each with loadPipeline, counting loads, typed
 * errors, other errors, hangs and leaked GPU bytes (bench/lib/fuzz.ts). Exits 1 if any case ended in
 * another error, a hang or a leak.
 *
 *   npm run fuzz [-- --cases N] [--seed S] [--hang-ms MS]
 */
import { createNodeDevice } from '../src/node.js';
import { runFuzz, type FuzzCounts } from './lib/fuzz.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new RangeError(`--${name} needs a number`);
  return v;
}

const cases = arg('cases', 100_000);
const seed = arg('seed', Date.now() % 2 ** 31);
const hangMs = arg('hang-ms', 2000);
const device = await createNodeDevice();
const line = (n: number, c: FuzzCounts, s: number) =>
  `${n} cases in ${s.toFixed(0)} s: ${c.loaded} loaded, ${c.typed} typed errors, ${c.other} other errors, ${c.hangs} hangs, ${c.leakedBytes} leaked GPU bytes (${c.leaks} cases)`;
const t0 = performance.now();
console.log(`fuzzing model loading: ${cases} cases, seed ${seed}, a hang is a case over ${hangMs} ms`);
const counts = await runFuzz(device, { seed, cases, hangMs, onProgress: (n, c) => console.log(line(n, c, (performance.now() - t0) / 1000)) });
console.log(line(counts.cases, counts, (performance.now() - t0) / 1000));
console.log('typed errors by class:', JSON.stringify(counts.byType));
for (const [kind, list] of Object.entries(counts.examples)) for (const e of list) console.log(`${kind}: ${e}`);
device.destroy();
process.exit(counts.other + counts.hangs + counts.leaks > 0 ? 1 : 0);
