/**
 * Loading by URL in Node through a disk cache, as the browser page keeps its downloads in the Cache API: a file is
 * downloaded once and stored with its size and SHA-256; later loads read it from disk, without a request, once
 * both check out. A file that does not (truncated, corrupted, half-written) is downloaded again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { urlFolder as uncachedUrlFolder } from './load.js';
import { fetchSource, type ByteSource, type Bytes, type CheckpointFolder, type FetchOptions } from './safetensors.js';
import { fileSource } from './safetensors-node.js';

export interface CachedUrlOptions extends FetchOptions {
  /** Folder of the stored downloads (default: defaultCacheDir()); false downloads every time. */
  readonly cacheDir?: string | false;
  /** Called when a file is ready, with whether it came from the cache and its size in bytes. */
  readonly onFile?: (url: string, fromCache: boolean, bytes: number) => void;
}

/** The cache folder cannot be written. */
export class CacheError extends Error {
  override name = 'CacheError';
}

/** What is stored beside each file: the download is used only while the file still has this size and hash. */
interface CacheRecord {
  readonly url: string;
  readonly size: number;
  readonly sha256: string;
}

/**
 * $XDG_CACHE_HOME/specdiff-webgpu (default ~/.cache/specdiff-webgpu); on macOS ~/Library/Caches/specdiff-webgpu,
 * on Windows %LOCALAPPDATA%\specdiff-webgpu\Cache.
 */
export function defaultCacheDir(): string {
  if (process.platform === 'win32') return join(process.env.LOCALAPPDATA || join(homedir(), 'AppData', 'Local'), 'specdiff-webgpu', 'Cache');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Caches', 'specdiff-webgpu');
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'specdiff-webgpu');
}

/** Files under a URL base (e.g. a Hugging Face `resolve/main/` URL), each downloaded once into the cache folder. */
export function urlFolder(base: string, options: CachedUrlOptions = {}): CheckpointFolder {
  const { cacheDir = defaultCacheDir(), onFile, ...fetchOptions } = options;
  const uncached = uncachedUrlFolder(base, fetchOptions);
  if (cacheDir === false) return uncached;
  return { name: uncached.name, open: (rel) => openCached(uncached.name + rel, cacheDir, fetchOptions, onFile) };
}

async function openCached(url: string, dir: string, options: FetchOptions, onFile: CachedUrlOptions['onFile']): Promise<ByteSource> {
  const file = cachedFile(dir, url);
  const size = await storedSize(file, url);
  if (size !== undefined) {
    onFile?.(url, true, size);
    return { ...(await fileSource(file)), name: url };
  }
  const source = await fetchSource(url, options);
  await store(dir, file, url, await source.read(0, source.size));
  onFile?.(url, false, source.size);
  return source;
}

/** A name per URL, ending in the file's own name so that the folder stays readable. */
function cachedFile(dir: string, url: string): string {
  const key = createHash('sha256').update(url).digest('hex').slice(0, 32);
  const name = (new URL(url).pathname.split('/').pop() ?? '').replace(/[^\w.-]+/g, '_').slice(-80);
  return join(dir, `${key}-${name || 'file'}`);
}

/** The stored file's size when it is complete and intact; undefined when it must be downloaded. */
async function storedSize(file: string, url: string): Promise<number | undefined> {
  let record: CacheRecord;
  try {
    record = JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as CacheRecord;
    if (record.url !== url || (await stat(file)).size !== record.size) return undefined;
    return (await sha256(file)) === record.sha256 ? record.size : undefined;
  } catch {
    return undefined; // absent or unreadable: downloaded again, and stored over it
  }
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

/** Written under temporary names and renamed into place, the file before its record: a reader never sees half a file. */
async function store(dir: string, file: string, url: string, bytes: Bytes): Promise<void> {
  const record: CacheRecord = { url, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  const part = `.${process.pid}.${randomBytes(4).toString('hex')}.part`;
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(file + part, bytes);
    await rename(file + part, file);
    await writeFile(`${file}.meta.json${part}`, JSON.stringify(record));
    await rename(`${file}.meta.json${part}`, `${file}.meta.json`);
  } catch (e) {
    await Promise.all([file + part, `${file}.meta.json${part}`].map((f) => rm(f, { force: true }).catch(() => undefined)));
    throw new CacheError(
      `cannot store ${url} in the cache folder ${dir} (${(e as Error).message}): choose another folder with cacheDir ` +
        '(CLI: --cache-dir), or turn the cache off with cacheDir: false',
    );
  }
}
