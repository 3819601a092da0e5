/**
 * The page: starts the worker, renders load progress, the adapter, and the two streamed columns.
 * body[data-state] is loading | ready | running | done | error | no-webgpu (the e2e test waits on it).
 */
import type { GenerationStats } from '../../src/index.js';
import { clearModelCache } from './cache.js';
import type { FromWorker, Method, Settings, ToWorker } from './protocol.js';

const $ = <T extends Element = HTMLElement>(sel: string, root: ParentNode = document) => root.querySelector(sel) as T;
const setState = (s: string) => (document.body.dataset.state = s);

const params = new URLSearchParams(location.search);
const base = new URL(params.get('models')?.replace(/\/?$/, '/') ?? 'models/', location.href).href;
const dtype = (params.get('dtype') ?? 'auto') as 'auto' | 'f16' | 'f32';
const source = $<HTMLFormElement>('#source');
(source.elements.namedItem('models') as HTMLInputElement).value = base;
(source.elements.namedItem('dtype') as HTMLSelectElement).value = dtype;
$('#clear-cache').onclick = async () => {
  await clearModelCache();
  $('#status').textContent = 'model cache cleared: the next load downloads again';
};

const controls = $<HTMLFormElement>('#controls');
const generateButton = $<HTMLButtonElement>('#generate');
const stopButton = $<HTMLButtonElement>('#stop');

function fatal(message: string, noWebGPU = false): void {
  const box = $('#fatal');
  box.hidden = false;
  box.textContent = noWebGPU
    ? `WebGPU is not available here, so the models cannot run. ${message} ` +
      'Use a recent Chrome or Edge (or Firefox / Safari with WebGPU enabled), on a page served over https or localhost.'
    : message;
  setState(noWebGPU ? 'no-webgpu' : 'error');
}

const mb = (n: number) => (n / 2 ** 20).toFixed(1);
const size = (n: number) => (n < 2 ** 20 ? `${(n / 1024).toFixed(1)} KB` : `${mb(n)} MB`);

/** One progress bar per file (the tokenizer loader may read a file twice: one row). */
const files = new Map<string, { bar: HTMLProgressElement; label: HTMLElement; cached: boolean }>();
function fileRow(url: string, fromCache: boolean): void {
  if (files.has(url)) return;
  const row = document.createElement('div');
  row.className = 'file';
  const label = document.createElement('span');
  const bar = document.createElement('progress');
  row.append(bar, label);
  $('#files').append(row);
  files.set(url, { bar, label, cached: fromCache });
  label.textContent = url.slice(base.length);
}
function progress(url: string, loaded: number, total: number): void {
  const f = files.get(url);
  if (!f) return;
  f.bar.max = total;
  f.bar.value = loaded;
  f.label.textContent = `${url.slice(base.length)}: ${size(loaded)} / ${size(total)}${f.cached ? ' (from cache)' : ''}`;
}

const columns = {
  ar: $('#col-ar'),
  specdiff: $('#col-specdiff'),
};
const METHOD_NAMES: Record<Method, string> = { ar: 'Autoregressive', specdiff: 'SpecDiff' };
const results: Partial<Record<Method, GenerationStats>> = {};
let readyText = '';

/** SpecDiff's acceptance by draft position, drawn live as bars (one per position) into the column's chart. */
const acceptance = {
  drafts: [] as number[],
  accepted: [] as number[],
  reset(): void {
    this.drafts = [];
    this.accepted = [];
    $('.acceptance').hidden = true;
  },
  add(drafted: number, accepted: number): void {
    for (let i = 0; i < drafted; i++) {
      this.drafts[i] = (this.drafts[i] ?? 0) + 1;
      this.accepted[i] = (this.accepted[i] ?? 0) + (i < accepted ? 1 : 0);
    }
    this.draw();
  },
  draw(): void {
    const n = this.drafts.length;
    const W = 320;
    const H = 90;
    const bar = W / Math.max(n, 1);
    const bars = this.drafts.map((d, i) => {
      const share = this.accepted[i] / d;
      const h = share * (H - 14);
      return `<rect x="${i * bar + 1}" y="${H - 14 - h}" width="${Math.max(bar - 2, 1)}" height="${h}"><title>position ${i + 1}: ${this.accepted[i]} of ${d} (${(100 * share).toFixed(0)}%)</title></rect>` +
        (n <= 16 || i % 4 === 0 ? `<text x="${i * bar + bar / 2}" y="${H - 2}" text-anchor="middle">${i + 1}</text>` : '');
    });
    const svg = $('#acceptance-chart');
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.innerHTML = bars.join('');
    $('.acceptance').hidden = n === 0;
  },
};

function statsLine(s: GenerationStats): string {
  const head = `${s.generatedTokens} tokens in ${(s.wallMs / 1000).toFixed(2)} s · ${s.targetPasses} target passes · ${s.tokensPerTargetPass.toFixed(2)} tokens/pass`;
  if (s.method === 'ar') return head;
  return `${head} · accepted ${s.acceptedTokens} of ${s.draftedTokens} drafted tokens (${(100 * s.acceptanceRate).toFixed(0)}%) · γ=${s.gamma}${s.maxGamma !== s.gamma ? `..${s.maxGamma} (mean ${s.meanDrafted.toFixed(1)})` : ''}, T=${s.steps}`;
}

function handle(m: FromWorker): void {
  switch (m.type) {
    case 'adapter': {
      const { adapter, features, limits } = m.info;
      const on = Object.entries(features).filter(([, v]) => v).map(([k]) => k);
      $('#adapter').textContent = `Adapter: ${adapter || '(the browser does not name it)'} · features: ${on.join(', ') || 'none'} · max binding ${mb(limits.maxStorageBufferBindingSize)} MB`;
      break;
    }
    case 'file':
      fileRow(m.url, m.fromCache);
      break;
    case 'progress':
      progress(m.url, m.loaded, m.total);
      break;
    case 'status':
      $('#status').textContent = m.text;
      break;
    case 'ready': {
      const all = [...files.values()];
      const bytes = all.reduce((n, f) => n + f.bar.max, 0);
      const cached = all.filter((f) => f.cached).length;
      readyText = `models ready: ${all.length} files, ${size(bytes)}, ${cached === all.length ? 'all from the cache' : `${cached} from the cache`}; ${m.dtype} weights`;
      $('#status').textContent = readyText;
      $<HTMLDetailsElement>('#downloads').open = false;
      if (m.prompt) (controls.elements.namedItem('prompt') as HTMLTextAreaElement).value = m.prompt;
      generateButton.disabled = false;
      setState('ready');
      break;
    }
    case 'step':
      acceptance.add(m.drafted, m.accepted);
      break;
    case 'start': {
      if (m.method === 'specdiff') acceptance.reset();
      $('#status').textContent = `${METHOD_NAMES[m.method]}: generating…`;
      const col = columns[m.method];
      $('.rate', col).textContent = 'prefill…';
      col.classList.add('active');
      break;
    }
    case 'tokens': {
      const col = columns[m.method];
      const gen = $('.gen', col);
      for (const p of m.pieces) {
        const span = document.createElement('span');
        span.className = `tok ${p.drafted ? 'd' : 't'}`;
        span.textContent = p.text;
        gen.append(span);
      }
      $('.rate', col).textContent = `${m.count} tokens · ${((1000 * m.count) / m.elapsedMs).toFixed(1)} tok/s`;
      break;
    }
    case 'done': {
      const col = columns[m.method];
      col.classList.remove('active');
      results[m.method] = m.stats;
      $('.rate', col).textContent = `${m.stats.tokensPerSecond.toFixed(1)} tok/s`;
      $('.stats', col).textContent = statsLine(m.stats);
      if (results.ar && results.specdiff) {
        const x = results.specdiff.tokensPerSecond / results.ar.tokensPerSecond;
        $('#speedup').textContent = `SpecDiff: ${x.toFixed(2)}× the tokens/s of AR (decode only, prefill excluded, same adapter)`;
      }
      break;
    }
    case 'finished':
      generateButton.disabled = false;
      stopButton.disabled = true;
      if (document.body.dataset.state === 'running') {
        $('#status').textContent = `finished · ${readyText}`;
        setState('done');
      }
      break;
    case 'error':
      if (m.fatal) fatal(m.message, m.noWebGPU);
      else {
        $('#status').textContent = `error: ${m.message}`;
        setState('error');
      }
      break;
  }
}

function settings(): Settings {
  const v = (name: string) => (controls.elements.namedItem(name) as HTMLInputElement).value;
  return {
    prompt: v('prompt'),
    gamma: Number(v('gamma')),
    maxGamma: Number(v('maxGamma')),
    steps: Number(v('steps')),
    temperature: Number(v('temperature')),
    maxNewTokens: Number(v('maxNewTokens')),
    seed: Number(v('seed')),
  };
}

if (!navigator.gpu) {
  fatal('This browser has no navigator.gpu.', true);
  $('#adapter').textContent = 'No WebGPU.';
} else {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  const send = (m: ToWorker) => worker.postMessage(m);
  worker.onmessage = (e: MessageEvent<FromWorker>) => handle(e.data);
  worker.onerror = (e) => fatal(`the worker failed: ${e.message}`);
  controls.onsubmit = (e) => {
    e.preventDefault();
    const s = settings();
    for (const [method, col] of Object.entries(columns)) {
      $('.prompt-text', col).textContent = s.prompt;
      $('.gen', col).replaceChildren();
      $('.rate', col).textContent = '';
      $('.stats', col).textContent = '';
      delete results[method as Method];
    }
    $('#speedup').textContent = '';
    generateButton.disabled = true;
    stopButton.disabled = false;
    setState('running');
    send({ type: 'generate', settings: s });
  };
  stopButton.onclick = () => send({ type: 'stop' });
  send({ type: 'load', base, dtype });
}
