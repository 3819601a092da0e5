/**
 * npm run bench:compile — what warming up costs, kernel by kernel: every kernel a generation with
 * the given settings can reach (Pipeline.warmup's list) is translated (Device.compile) and then
 * run once (Device.launch, where llvmpipe compiles machine code), alone and in turn, and the times
 * are summed by kernel family. Point MESA_SHADER_CACHE_DIR at an empty folder (or set
 * MESA_SHADER_CACHE_DISABLE=true) for the cold figures; docs/performance.md, "Compiling kernels".
 *
 *   MESA_SHADER_CACHE_DISABLE=true npm run bench:compile [-- --method specdiff] [--temperature 0] [--top N]
 */
import { parseArgs } from 'node:util';
import { bundledModelPath, createNodeDevice, dirFolder, loadPipeline } from '../src/node.js';
import type { KernelSpec } from '../src/tensor/device.js';
import type { Method } from '../src/decode/options.js';
import './lib/lavapipe-env.js';

const { values } = parseArgs({
  options: {
    method: { type: 'string', default: 'specdiff' },
    temperature: { type: 'string', default: '0' },
    'max-new-tokens': { type: 'string', default: '64' },
    prompt: { type: 'string', default: 'The ship sailed' },
    /** Also list the N slowest kernels. */
    top: { type: 'string', default: '10' },
  },
});
const temperature = Number(values.temperature);
// One device: each kernel's first run is timed where it compiles.
const device = await createNodeDevice({ warmupDevices: 1 });
const folder = (name: 'target' | 'drafter-mdlm' | 'drafter-ar') => dirFolder(bundledModelPath(name));
const pipe = await loadPipeline(device, { target: folder('target'), diffusionDrafter: folder('drafter-mdlm'), arDrafter: folder('drafter-ar') }, { dtype: 'f16' });

interface Timed { key: string; compileMs: number; launchMs: number }
const timed: Timed[] = [];
// Stands in for the device's warm-up so that each kernel is compiled and launched alone.
device.warmup = async (specs: Iterable<KernelSpec>) => {
  for (const spec of specs) {
    const t0 = performance.now();
    await device.compile([spec]);
    const t1 = performance.now();
    await device.launch([spec]);
    timed.push({ key: spec.key, compileMs: t1 - t0, launchMs: performance.now() - t1 });
  }
  return { compiled: timed.length, launched: timed.length, helperDevices: 0 };
};
const t0 = performance.now();
await pipe.warmup({ method: values.method as Method, temperature, topK: temperature === 0.8 ? 50 : 0, prompt: values.prompt, maxNewTokens: Number(values['max-new-tokens']) });
const wallS = (performance.now() - t0) / 1000;

const sum = (xs: Timed[], f: (t: Timed) => number) => xs.reduce((a, t) => a + f(t), 0) / 1000;
const family = (key: string) => key.replace(/_r\d+.*$/, '');
const families = new Map<string, Timed[]>();
for (const t of timed) families.set(family(t.key), [...(families.get(family(t.key)) ?? []), t]);
console.log(`${values.method}, temperature ${temperature}: ${timed.length} kernels in ${wallS.toFixed(1)} s (translate ${sum(timed, (t) => t.compileMs).toFixed(1)} s, first runs ${sum(timed, (t) => t.launchMs).toFixed(1)} s)`);
console.log('kernels  seconds  family');
for (const [name, ts] of [...families].sort((a, b) => sum(b[1], (t) => t.compileMs + t.launchMs) - sum(a[1], (t) => t.compileMs + t.launchMs))) {
  console.log(`${String(ts.length).padStart(7)} ${sum(ts, (t) => t.compileMs + t.launchMs).toFixed(2).padStart(8)}  ${name}`);
}
const top = Number(values.top);
if (top > 0) {
  console.log(`slowest ${top}:`);
  for (const t of [...timed].sort((a, b) => b.compileMs + b.launchMs - a.compileMs - a.launchMs).slice(0, top)) {
    console.log(`${((t.compileMs + t.launchMs) / 1000).toFixed(2).padStart(8)}  ${t.key}`);
  }
}
pipe.dispose();
process.exit(0);
