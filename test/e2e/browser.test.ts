/**
 * The browser example end to end: builds examples/browser, serves it with small random models on
 * 127.0.0.1, drives Debian's chromium (headless, SwiftShader WebGPU) through playwright-core, and
 * checks that the greedy text of AR and SpecDiff equals what Node produces on the same models, that
 * a reload reads the models from the Cache API, and that a browser without WebGPU is told so.
 * Needs /usr/bin/chromium (`bash .ci/setup-system.sh` installs it) or CHROMIUM_PATH.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dirFolder, loadPipeline } from '../../src/node.js';
import { getDevice } from '../helpers/device.js';
import { writeTinyFolders } from './tiny-folders.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--headless=new'];
const SETTINGS = { prompt: 'The ship sailed', gamma: 4, maxGamma: 11, steps: 2, temperature: 0, maxNewTokens: 16, seed: 0 };
const SCREENSHOT = join(tmpdir(), 'specdiff-browser-e2e.png');
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.txt': 'text/plain' };

/** Static files under root; every path requested is recorded, and those answered 404 also in notFound. */
function serve(root: string, requests: string[], notFound: string[]): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const file = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
    try {
      if (!file.startsWith(root + sep) || !(await stat(file)).isFile()) throw new Error('not a file');
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length });
      res.end(body);
    } catch {
      notFound.push(path);
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function waitForState(page: Page, states: string[], timeout: number): Promise<string> {
  await page.waitForFunction((s) => s.includes(document.body.dataset.state ?? ''), states, { timeout, polling: 100 });
  return page.evaluate(() => document.body.dataset.state ?? '');
}

async function pageProblem(page: Page): Promise<string> {
  return page.evaluate(() => `${document.querySelector('#fatal')?.textContent ?? ''} ${document.querySelector('#status')?.textContent ?? ''}`.trim());
}

describe('browser example (chromium, WebGPU on SwiftShader)', () => {
  let root = '';
  let server: Server | undefined;
  let browser: Browser | undefined;
  let base = '';
  const requests: string[] = [];
  const notFound: string[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} not found: run \`bash .ci/setup-system.sh\` (installs Debian's chromium) or set CHROMIUM_PATH`);
    }
    root = await mkdtemp(join(tmpdir(), 'specdiff-e2e-'));
    // With a tokenizer.json, as the bundled models have: the loader then probes for no absent file.
    await writeTinyFolders(join(root, 'models'), { tokenizerJson: true });
    await build({ configFile: 'examples/browser/vite.config.ts', logLevel: 'warn', build: { outDir: root, emptyOutDir: false } });
    server = await serve(root, requests, notFound);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    server?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function open(): Promise<Page> {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 860 } });
    page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
    return page;
  }

  it('streams greedy AR and SpecDiff from a worker, equal to Node, and reloads from the cache', async () => {
    const page = await open();
    await page.goto(`${base}?dtype=f32`);
    const loaded = await waitForState(page, ['ready', 'error', 'no-webgpu'], 60_000);
    expect(loaded, `${await pageProblem(page)}\n${logs.join('\n')}`).toBe('ready');
    expect(await page.textContent('#adapter')).toMatch(/^Adapter: /);

    expect(notFound, 'requests answered 404 while the page loaded').toEqual([]);

    // Every status line shown during the run, with how much text had streamed by then.
    await page.evaluate(() => {
      const seen: Array<[string, number]> = ((window as unknown as { statusSeen: Array<[string, number]> }).statusSeen = []);
      const status = document.querySelector('#status')!;
      new MutationObserver(() => seen.push([status.textContent ?? '', document.querySelector('#col-ar .gen')!.textContent!.length])).observe(status, { childList: true, characterData: true, subtree: true });
    });
    for (const [name, value] of Object.entries(SETTINGS)) await page.fill(`[name=${name}]`, String(value));
    await page.click('#generate');
    const ran = await waitForState(page, ['done', 'error'], 90_000);
    expect(ran, `${await pageProblem(page)}\n${logs.join('\n')}`).toBe('done');
    const shown = await page.$$eval('.column', (cols) => Object.fromEntries(cols.map((c) => [c.id, c.querySelector('.gen')!.textContent])));
    const drafted = await page.$$eval('#col-specdiff .tok.d', (spans) => spans.length);
    // The live acceptance chart: one bar per draft position the run reached, the first one non-empty.
    const bars = await page.$$eval('#acceptance-chart rect', (rects) => rects.map((r) => Number(r.getAttribute('height'))));
    const chartShown = await page.$eval('.acceptance', (f) => !(f as HTMLElement).hidden);
    const statusSeen = await page.evaluate(() => (window as unknown as { statusSeen: Array<[string, number]> }).statusSeen);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`browser example screenshot: ${SCREENSHOT}`);

    const pipe = await loadPipeline(await getDevice(), { target: dirFolder(join(root, 'models/target')), diffusionDrafter: dirFolder(join(root, 'models/drafter-mdlm')) }, { dtype: 'f32' });
    try {
      for (const method of ['ar', 'specdiff'] as const) {
        const node = await pipe.generate(SETTINGS.prompt, { ...SETTINGS, method }).result();
        expect(node.tokens.length).toBe(SETTINGS.maxNewTokens);
        expect(shown[`col-${method}`], method).toBe(node.text);
      }
    } finally {
      pipe.dispose();
    }
    expect(drafted).toBeGreaterThan(0); // the tiny drafter and target agree on spaces
    expect(chartShown).toBe(true);
    expect(bars.length).toBeGreaterThanOrEqual(SETTINGS.gamma);
    expect(bars[0]).toBeGreaterThan(0);
    // The status line follows the run: once text streams it names the method generating, never the compilation.
    expect(statusSeen.filter(([, streamed]) => streamed > 0).map(([s]) => s).filter((s) => /compiling/.test(s))).toEqual([]);
    expect(statusSeen.map(([s]) => s)).toContain('SpecDiff: generating…');

    // A reload must not download the weights again.
    const downloads = () => requests.filter((p) => p.endsWith('.safetensors')).length;
    expect(downloads()).toBe(2);
    await page.reload();
    expect(await waitForState(page, ['ready', 'error'], 60_000)).toBe('ready');
    expect(downloads()).toBe(2);
    expect(await page.textContent('#files')).toContain('target/model.safetensors');
    expect(await page.$$eval('#files .file', (rows) => rows.every((r) => r.textContent!.includes('(from cache)')))).toBe(true);
    expect(await page.textContent('#status')).toContain('all from the cache');
    expect(notFound, 'requests answered 404').toEqual([]);
    await page.close();
  }, 180_000);

  it('says plainly that WebGPU is missing', async () => {
    const page = await open();
    await page.addInitScript(() => delete (Navigator.prototype as { gpu?: unknown }).gpu);
    await page.goto(base);
    expect(await waitForState(page, ['no-webgpu', 'ready', 'error'], 20_000)).toBe('no-webgpu');
    expect(await page.textContent('#fatal')).toContain('WebGPU is not available');
    await page.close();
  });
});
