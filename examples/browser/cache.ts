/**
 * fetch() through the Cache API: model files are stored the first time they are downloaded, so a
 * reload reads them from disk. Without the Cache API (an insecure origin) it is a plain fetch.
 */
export const CACHE_NAME = 'specdiff-models-v1';

export interface CachedFetch {
  (url: string, init?: { signal?: AbortSignal }): Promise<Response>;
  /** Resolves when every response fetched so far is stored (or failed to be). */
  stored(): Promise<void>;
}

/** onSource tells, per file, whether it came from the cache. Only successful responses are stored. */
export function cachedFetch(onSource: (url: string, fromCache: boolean) => void = () => {}): CachedFetch {
  const opened = 'caches' in globalThis ? caches.open(CACHE_NAME).catch(() => null) : Promise.resolve(null);
  const writes: Promise<void>[] = [];
  const fetchThrough = async (url: string, init?: { signal?: AbortSignal }): Promise<Response> => {
    const cache = await opened;
    const hit = await cache?.match(url);
    if (hit) {
      onSource(url, true);
      return hit;
    }
    // The loader aborts a stalled or short download through the signal: the clone being stored then
    // errors too, so cache.put rejects and no partial file is kept.
    const response = await fetch(url, init);
    if (response.ok) {
      onSource(url, false);
      // The clone's stream is written to the cache while the caller reads the original.
      if (cache) writes.push(cache.put(url, response.clone()).catch((e: unknown) => console.warn(`not cached: ${url}: ${String(e)}`)));
    }
    return response;
  };
  return Object.assign(fetchThrough, { stored: async () => void (await Promise.all(writes)) });
}

export async function clearModelCache(): Promise<boolean> {
  return 'caches' in globalThis ? caches.delete(CACHE_NAME) : false;
}
