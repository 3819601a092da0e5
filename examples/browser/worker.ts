/**
 * The worker owns the GPU: it loads the pipeline (downloads through the Cache API) and runs the
 * generations, posting tokens as they come. The page only renders what it is sent.
 */
import { Device, WebGPUUnavailableError, defaultWeightDType, loadPipeline, urlFolder, type Pipeline, type StepTrace } from '../../src/index.js';
import { cachedFetch } from './cache.js';
import type { FromWorker, Method, Piece, Settings, ToWorker } from './protocol.js';

const scope = self as unknown as { postMessage(m: FromWorker): void; onmessage: ((e: MessageEvent<ToWorker>) => void) | null };
const post = (m: FromWorker) => scope.postMessage(m);

let pipe: Pipeline | null = null;
let abort: AbortController | null = null;

async function load(base: string, dtype: 'auto' | 'f16' | 'f32'): Promise<void> {
  let device: Device;
  try {
    device = await Device.create();
  } catch (e) {
    if (!(e instanceof WebGPUUnavailableError)) post({ type: 'error', message: `WebGPU device: ${(e as Error).message}`, fatal: true });
    else if (!navigator.gpu) post({ type: 'error', message: 'This browser does not offer WebGPU to workers.', fatal: true, noWebGPU: true });
    else post({ type: 'error', message: 'The browser has WebGPU but gave no adapter (GPU blocklisted or WebGPU turned off; see chrome://gpu).', fatal: true, noWebGPU: true });
    return;
  }
  post({ type: 'adapter', info: device.info });
  const f = cachedFetch((url, fromCache) => post({ type: 'file', url, fromCache }));
  const onProgress = (loaded: number, total: number, url: string) => post({ type: 'progress', url, loaded, total });
  const folder = (name: string) => urlFolder(new URL(name, base).href, { fetch: f, onProgress });
  const chosen = dtype === 'auto' ? defaultWeightDType(device) : dtype;
  try {
    const onGpu = (loaded: number, total: number) => post({ type: 'status', text: `weights on the GPU: ${Math.floor((100 * loaded) / Math.max(total, 1))}%` });
    pipe = await loadPipeline(device, { target: folder('target/'), diffusionDrafter: folder('drafter-mdlm/') }, { dtype: chosen, onProgress: onGpu });
  } catch (e) {
    post({ type: 'error', message: `Loading the models from ${base} failed: ${(e as Error).message}. Point the page at a folder holding target/ and drafter-mdlm/ with ?models=URL.`, fatal: true });
    return;
  }
  await f.stored();
  const prompt = await fetch(new URL('prompt.txt', base)).then((r) => (r.ok ? r.text() : null), () => null);
  post({ type: 'ready', dtype: chosen, prompt: prompt?.trim() ?? null });
}

function options(method: Method, s: Settings) {
  return { method, gamma: s.gamma, maxGamma: Math.max(s.gamma, s.maxGamma), steps: s.steps, temperature: s.temperature, maxNewTokens: s.maxNewTokens, seed: s.seed };
}

async function run(p: Pipeline, method: Method, s: Settings, signal: AbortSignal): Promise<void> {
  post({ type: 'start', method });
  const t0 = performance.now();
  const onStep = (step: StepTrace) => step.drafted.length && post({ type: 'step', method, drafted: step.drafted.length, accepted: step.accepted });
  const gen = p.generate(s.prompt, { ...options(method, s), signal, onStep });
  // Each token decoded on its own (bytes of a split character are held back) so that it can be coloured.
  const decoder = p.tokenizer.createStreamDecoder();
  let count = 0;
  for await (const chunk of gen) {
    const pieces: Piece[] = chunk.tokens.map((id, i) => ({ text: decoder.push(id), drafted: chunk.drafted[i] }));
    count += chunk.tokens.length;
    post({ type: 'tokens', method, pieces, count, elapsedMs: performance.now() - t0 });
  }
  const tail = decoder.flush();
  if (tail) post({ type: 'tokens', method, pieces: [{ text: tail, drafted: false }], count, elapsedMs: performance.now() - t0 });
  const { text, stats } = await gen.result();
  post({ type: 'done', method, text, stats });
}

async function generateBoth(s: Settings): Promise<void> {
  if (!pipe) return;
  abort = new AbortController();
  try {
    // Compile every kernel both runs can reach, with their exact settings, so that neither column pays for it
    // (nothing to do when earlier settings reached them all).
    for (const method of ['ar', 'specdiff'] as const) {
      await pipe.warmup({ ...options(method, s), prompt: s.prompt, onProgress: (done, total) => { if (total) post({ type: 'status', text: `compiling kernels ${done}/${total}` }); } });
    }
    // One after the other on the same device: running both at once would make them share the GPU.
    for (const method of ['ar', 'specdiff'] as const) await run(pipe, method, s, abort.signal);
  } catch (e) {
    post({ type: 'error', message: (e as Error).message, fatal: false });
  } finally {
    abort = null;
    post({ type: 'finished' });
  }
}

scope.onmessage = ({ data }) => {
  if (data.type === 'load') void load(data.base, data.dtype);
  else if (data.type === 'generate') void generateBoth(data.settings);
  else if (data.type === 'stop') abort?.abort();
};
