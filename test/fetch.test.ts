// Loading by URL against a local server that misbehaves: every failure ends within its timeout, as a FetchError
// naming the URL and the HTTP status, system error, timeout or abort.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FetchError, fetchSource } from '../src/models/safetensors.js';
import { loadTokenizer, urlFolder } from '../src/models/load.js';
import { cachedFetch } from '../examples/browser/cache.js';

const BODY = new Uint8Array(1000).fill(7);
const held: ServerResponse[] = [];

function serve(path: string, res: ServerResponse): void {
  switch (path.startsWith('/silent') ? '/silent' : path) {
    case '/ok':
      res.writeHead(200, { 'content-length': BODY.length }).end(BODY);
      return;
    case '/stall': // headers and 10 bytes, then nothing
      res.writeHead(200, { 'content-length': BODY.length }).write(BODY.subarray(0, 10));
      held.push(res);
      return;
    case '/short': // promises 1000 bytes, sends 10 and closes
      res.writeHead(200, { 'content-length': BODY.length }).write(BODY.subarray(0, 10), () => res.socket?.destroy());
      return;
    case '/silent': // never answers
      held.push(res);
      return;
    default:
      res.writeHead(404, 'Not Found').end('missing');
  }
}

let server: Server;
let base = '';
let refused = '';

beforeAll(async () => {
  server = createServer((req, res) => serve(req.url ?? '', res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // A port that was just free: nothing listens there.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  refused = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise((resolve) => probe.close(resolve));
});

afterAll(async () => {
  for (const res of held) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function failure(p: Promise<unknown>): Promise<FetchError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(FetchError);
  return e as FetchError;
}

const fast = { connectTimeoutMs: 300, stallTimeoutMs: 300 };

describe('fetchSource', () => {
  it('downloads a whole body', async () => {
    const source = await fetchSource(`${base}/ok`, fast);
    expect(await source.read(0, source.size)).toEqual(BODY);
  });

  it('a body that stalls mid-way fails after stallTimeoutMs, saying how much arrived', async () => {
    const started = performance.now();
    const e = await failure(fetchSource(`${base}/stall`, fast));
    expect(e.message).toBe(`${base}/stall: stalled: no data for 300 ms after 10 bytes (stallTimeoutMs)`);
    expect(e.code).toBe('TIMEOUT');
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('a Content-Length larger than the body is an error, not a short file', async () => {
    const e = await failure(fetchSource(`${base}/short`, fast));
    expect(e.message).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/short: /);
  });

  it('a server that never answers fails after connectTimeoutMs', async () => {
    const e = await failure(fetchSource(`${base}/silent`, fast));
    expect(e.message).toBe(`${base}/silent: no response within 300 ms (connectTimeoutMs)`);
  });

  it('a refused connection names the system error', async () => {
    const e = await failure(fetchSource(`${refused}/x`, fast));
    expect(e.code).toBe('ECONNREFUSED');
    expect(e.message).toContain('ECONNREFUSED');
  });

  it('an HTTP error carries its status', async () => {
    const e = await failure(fetchSource(`${base}/nope`, fast));
    expect([e.status, e.notFound, e.message]).toEqual([404, true, `${base}/nope: HTTP 404 Not Found`]);
  });

  it('an AbortSignal cancels a download in flight', async () => {
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error('user cancelled')), 100);
    const e = await failure(fetchSource(`${base}/stall`, { signal: ctl.signal }));
    expect([e.code, e.message]).toEqual(['ABORTED', `${base}/stall: aborted (user cancelled)`]);
  });

  it('the fetch it calls gets a signal that is aborted on a timeout, so a caching fetch can drop the partial body', async () => {
    let signal: AbortSignal | undefined;
    await failure(fetchSource(`${base}/stall`, { ...fast, fetch: (url, init) => ((signal = init?.signal), fetch(url, init)) }));
    expect(signal?.aborted).toBe(true);
  });

  it.each([0, -1, NaN, 2 ** 31])('a timeout of %d ms is a RangeError', async (ms) => {
    await expect(fetchSource(`${base}/ok`, { stallTimeoutMs: ms })).rejects.toThrow(RangeError);
  });
});

describe('loadTokenizer over a URL', () => {
  it('files that are absent (404) are reported as no tokenizer', async () => {
    await expect(loadTokenizer(urlFolder(`${base}/none`, fast))).rejects.toThrow(
      `${base}/none/: no tokenizer (tokenizer.json, or vocab.json and merges.txt): tokenizer.json: HTTP 404; vocab.json: HTTP 404`,
    );
  });

  it('a server that cannot be reached is reported as such, not as a missing tokenizer', async () => {
    const e = await failure(loadTokenizer(urlFolder(refused, fast)));
    expect(e.message).toContain(`${refused}/tokenizer.json: `);
    expect(e.code).toBe('ECONNREFUSED');
  });

  it('a server that never answers is reported after connectTimeoutMs', async () => {
    const e = await failure(loadTokenizer(urlFolder(`${base}/silent-dir`, fast)));
    expect(e.code).toBe('TIMEOUT');
  });
});

describe("the browser example's caching fetch", () => {
  // A Cache API that stores a response once its whole body has been read, as browsers do.
  function fakeCaches() {
    const stored = new Map<string, number>();
    const cache = {
      match: async () => undefined,
      put: async (url: string, response: Response) => void stored.set(url, (await response.arrayBuffer()).byteLength),
    };
    return { stored, caches: { open: async () => cache, delete: async () => true } };
  }
  const within = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('cache write never ended')), 3000))]);

  it('stores a complete download, and nothing of one that stalled and was aborted', async () => {
    const fake = fakeCaches();
    (globalThis as { caches?: unknown }).caches = fake.caches;
    try {
      const f = cachedFetch();
      await fetchSource(`${base}/ok`, { ...fast, fetch: f });
      await failure(fetchSource(`${base}/stall`, { ...fast, fetch: f }));
      await within(f.stored());
      expect([...fake.stored]).toEqual([[`${base}/ok`, BODY.length]]);
    } finally {
      delete (globalThis as { caches?: unknown }).caches;
    }
  });
});
