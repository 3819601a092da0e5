// Loading by URL in Node keeps each download in a cache folder, checked by size and SHA-256 before it is used,
// against a local server that counts the requests it answers.
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheError, defaultCacheDir, FetchError, loadPipeline, urlFolder } from '../src/node.js';
import { writeTinyFolders } from './e2e/tiny-folders.js';
import { getDevice } from './helpers/device.js';

const BODY = new Uint8Array(5000).map((_, i) => (i * 31) % 251);
const requests = new Map<string, number>();
const requested = (path: string) => requests.get(path) ?? 0;
let server: Server;
let base = '';
let scratch = '';
let models = '';

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'specdiff-url-cache-'));
  models = join(scratch, 'models');
  // With a tokenizer.json, loading probes for no absent file.
  await writeTinyFolders(models, { tokenizerJson: true });
  server = createServer(async (req, res) => {
    const path = req.url ?? '';
    requests.set(path, requested(path) + 1);
    if (path === '/files/weights.bin') return void res.writeHead(200, { 'content-length': BODY.length }).end(BODY);
    if (path.startsWith('/models/')) {
      const body = await readFile(join(models, path.slice('/models/'.length))).catch(() => null);
      if (body) return void res.writeHead(200, { 'content-length': body.length }).end(body);
    }
    res.writeHead(404, 'Not Found').end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(scratch, { recursive: true, force: true });
});

const freshCache = () => mkdtemp(join(scratch, 'cache-'));

async function readAll(cacheDir: string | false, onFile?: (url: string, fromCache: boolean, bytes: number) => void): Promise<Uint8Array> {
  const src = await urlFolder(`${base}/files`, { cacheDir, onFile }).open('weights.bin');
  try {
    return await src.read(0, src.size);
  } finally {
    await src.close?.();
  }
}

/** The cached copy of weights.bin (the folder also holds its size and hash record). */
async function storedFile(cacheDir: string): Promise<string> {
  const names = (await readdir(cacheDir)).filter((n) => n.endsWith('-weights.bin'));
  expect(names).toHaveLength(1);
  return join(cacheDir, names[0]);
}

describe('urlFolder in Node: a disk cache of downloads', () => {
  it('the first load downloads the file and stores it in the cache folder', async () => {
    const cacheDir = await freshCache();
    const before = requested('/files/weights.bin');
    const files: unknown[] = [];
    expect(await readAll(cacheDir, (...f) => files.push(f))).toEqual(BODY);
    expect(requested('/files/weights.bin')).toBe(before + 1);
    expect(files).toEqual([[`${base}/files/weights.bin`, false, BODY.length]]);
    expect(new Uint8Array(await readFile(await storedFile(cacheDir)))).toEqual(BODY);
  });

  it('a second load reads the cache and sends no request', async () => {
    const cacheDir = await freshCache();
    await readAll(cacheDir);
    const before = requested('/files/weights.bin');
    const files: unknown[] = [];
    expect(await readAll(cacheDir, (...f) => files.push(f))).toEqual(BODY);
    expect(requested('/files/weights.bin')).toBe(before);
    expect(files).toEqual([[`${base}/files/weights.bin`, true, BODY.length]]);
  });

  it('a truncated cached file is downloaded again and stored whole', async () => {
    const cacheDir = await freshCache();
    await readAll(cacheDir);
    await truncate(await storedFile(cacheDir), 1000);
    const before = requested('/files/weights.bin');
    expect(await readAll(cacheDir)).toEqual(BODY);
    expect(requested('/files/weights.bin')).toBe(before + 1);
    expect(new Uint8Array(await readFile(await storedFile(cacheDir)))).toEqual(BODY);
  });

  it('a cached file of the right size with a changed byte fails its hash and is downloaded again', async () => {
    const cacheDir = await freshCache();
    await readAll(cacheDir);
    const file = await storedFile(cacheDir);
    const bytes = await readFile(file);
    bytes[4321] ^= 1;
    await writeFile(file, bytes);
    const before = requested('/files/weights.bin');
    expect(await readAll(cacheDir)).toEqual(BODY);
    expect(requested('/files/weights.bin')).toBe(before + 1);
  });

  it('a 404 is a FetchError naming the URL and the status, and nothing is stored', async () => {
    const cacheDir = await freshCache();
    const e = await urlFolder(`${base}/files`, { cacheDir }).open('absent.bin').then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(FetchError);
    expect((e as FetchError).status).toBe(404);
    expect((e as FetchError).message).toContain(`${base}/files/absent.bin`);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('cacheDir false downloads every time', async () => {
    const before = requested('/files/weights.bin');
    await readAll(false);
    await readAll(false);
    expect(requested('/files/weights.bin')).toBe(before + 2);
  });

  it('a cache folder that cannot be made is a CacheError naming it and the way out', async () => {
    const blocker = join(scratch, 'a-file');
    await writeFile(blocker, 'not a folder');
    const e = await readAll(join(blocker, 'cache')).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(CacheError);
    expect((e as Error).message).toMatch(/cache folder .*a-file\/cache .*cacheDir: false/);
  });

  it('the default cache folder is under XDG_CACHE_HOME when it is set (Linux)', () => {
    const saved = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = '/somewhere/cache';
    try {
      expect(defaultCacheDir()).toBe('/somewhere/cache/specdiff-webgpu');
    } finally {
      if (saved === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved;
    }
  });

  it('a pipeline loaded again by URL reads every file from the cache: no request, the same text', async () => {
    const cacheDir = await freshCache();
    const device = await getDevice();
    const load = () => loadPipeline(device, { target: urlFolder(`${base}/models/target`, { cacheDir }), diffusionDrafter: urlFolder(`${base}/models/drafter-mdlm`, { cacheDir }) });
    const first = await load();
    const text = (await first.generate('The ship', { method: 'specdiff', maxNewTokens: 8 }).result()).text;
    first.dispose();
    const served = [...requests.values()].reduce((a, b) => a + b, 0);
    const second = await load();
    try {
      expect([...requests.values()].reduce((a, b) => a + b, 0)).toBe(served);
      expect((await second.generate('The ship', { method: 'specdiff', maxNewTokens: 8 }).result()).text).toBe(text);
    } finally {
      second.dispose();
    }
  });
});
