// Node file access for safetensors: the only module that touches node:fs. Files are read range by range through a
// FileHandle, so a checkpoint is never held in memory twice (once as a file image, once as tensors).
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  openCheckpoint,
  openSafetensors,
  SafetensorsError,
  type ByteSource,
  type Bytes,
  type Checkpoint,
  type CheckpointFolder,
} from './safetensors.js';

/** FileHandle.read takes at most 2 GiB - 1 bytes per call. */
const MAX_READ = 1 << 30;

export async function fileSource(path: string): Promise<ByteSource> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const read = (offset: number, length: number) => readRange(handle, path, offset, length);
    return { name: path, size, read, close: () => handle.close() };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function readRange(handle: FileHandle, path: string, offset: number, length: number): Promise<Bytes> {
  const bytes = new Uint8Array(length);
  for (let done = 0; done < length; ) {
    const { bytesRead } = await handle.read(bytes, done, Math.min(length - done, MAX_READ), offset + done);
    if (bytesRead === 0) {
      const at = offset + done;
      throw new SafetensorsError(path, `file ended at byte ${at} while reading ${length} bytes at ${offset}`);
    }
    done += bytesRead;
  }
  return bytes;
}

/** One .safetensors file as a checkpoint. */
export async function openSafetensorsFile(path: string): Promise<Checkpoint> {
  return openSafetensors(await fileSource(path));
}

/** A checkpoint directory: `model.safetensors`, or the shards of `model.safetensors.index.json`. */
export function openCheckpointDir(dir: string): Promise<Checkpoint> {
  return openCheckpoint(dirFolder(dir));
}

/** A checkpoint folder on the local filesystem (config.json, tokenizer files and weights). */
export function dirFolder(dir: string): CheckpointFolder {
  return {
    name: dir,
    open: (relPath) => fileSource(join(dir, relPath)),
    exists: (relPath) => isFile(dir, join(dir, relPath)),
  };
}

/**
 * Absent means absent: other stat failures (permissions, I/O) must surface, not look like a missing file, and a
 * missing folder is named as such rather than as a folder without the file.
 */
async function isFile(dir: string, path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
    const folder = await stat(dir).catch((e: NodeJS.ErrnoException) => e);
    if (folder instanceof Error) throw new SafetensorsError(dir, `cannot read the folder (${folder.code ?? folder.message})`);
    if (!folder.isDirectory()) throw new SafetensorsError(dir, 'is not a folder');
    return false;
  }
}
