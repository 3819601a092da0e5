/** A checkpoint folder held in memory, for loader tests. */
import { memorySource, type CheckpointFolder } from '../../src/models/safetensors.js';

export function memoryFolder(name: string, files: Record<string, string | Uint8Array<ArrayBuffer>>): CheckpointFolder {
  const bytes = (f: string | Uint8Array<ArrayBuffer>) => (typeof f === 'string' ? new TextEncoder().encode(f) : f);
  return {
    name,
    exists: async (rel) => Object.hasOwn(files, rel),
    open: async (rel) => {
      if (!Object.hasOwn(files, rel)) throw Object.assign(new Error(`ENOENT: ${name}/${rel}`), { code: 'ENOENT' });
      return memorySource(bytes(files[rel]), `${name}/${rel}`);
    },
  };
}
