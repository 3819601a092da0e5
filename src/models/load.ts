/** Loading a model from a checkpoint folder (directory, URL base, in-memory files): config.json + safetensors. */
import type { Device } from '../tensor/device.js';
import { ConfigError, parseGPT2Config, parseMDLMConfig } from './config.js';
import { GPT2, type ModelLoadOptions } from './gpt2.js';
import { MDLM } from './mdlm.js';
import { fetchSource, openCheckpoint, type Checkpoint, type CheckpointFolder, type FetchOptions } from './safetensors.js';
import { Tokenizer } from './tokenizer.js';

export async function readText(folder: CheckpointFolder, name: string): Promise<string> {
  const src = await folder.open(name);
  try {
    return new TextDecoder().decode(await src.read(0, src.size));
  } finally {
    await src.close?.();
  }
}

async function readConfig(folder: CheckpointFolder): Promise<unknown> {
  const where = `${folder.name}/config.json`;
  let text: string;
  try {
    text = await readText(folder, 'config.json');
  } catch (e) {
    throw new ConfigError(`${where}: cannot be read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${where}: invalid JSON (${(e as Error).message})`);
  }
}

/** config.json parsed by `parse`, then the checkpoint (closed once the weights are on the GPU) loaded by `load`. */
async function loadFolder<C, M>(
  folder: CheckpointFolder,
  parse: (json: unknown, source: string) => C,
  load: (ckpt: Checkpoint, config: C) => Promise<M>,
): Promise<M> {
  const config = parse(await readConfig(folder), `${folder.name}/config.json`);
  const ckpt = await openCheckpoint(folder);
  try {
    return await load(ckpt, config);
  } finally {
    await ckpt.close();
  }
}

export function loadGPT2(device: Device, folder: CheckpointFolder, opts: ModelLoadOptions = {}): Promise<GPT2> {
  return loadFolder(folder, parseGPT2Config, (ckpt, config) => GPT2.load(device, ckpt, config, opts));
}

export function loadMDLM(device: Device, folder: CheckpointFolder, opts: ModelLoadOptions = {}): Promise<MDLM> {
  return loadFolder(folder, parseMDLMConfig, (ckpt, config) => MDLM.load(device, ckpt, config, opts));
}

/** Files under a URL base (e.g. a Hugging Face `resolve/main/` URL or a static folder). */
export function urlFolder(base: string, options: FetchOptions = {}): CheckpointFolder {
  const root = base.endsWith('/') ? base : `${base}/`;
  return { name: root, open: (rel) => fetchSource(root + rel, options) };
}

/** `name` inside the folder, for messages. */
export function filePath(folder: CheckpointFolder, name: string): string {
  return folder.name.endsWith('/') ? folder.name + name : `${folder.name}/${name}`;
}

/** tokenizer.json, or vocab.json + merges.txt. */
export async function loadTokenizer(folder: CheckpointFolder): Promise<Tokenizer> {
  const has = async (name: string) => (folder.exists ? folder.exists(name) : readText(folder, name).then(() => true, () => false));
  if (await has('tokenizer.json')) return Tokenizer.fromTokenizerJson(await readText(folder, 'tokenizer.json'), filePath(folder, 'tokenizer.json'));
  if ((await has('vocab.json')) && (await has('merges.txt'))) {
    return Tokenizer.fromVocabMerges(await readText(folder, 'vocab.json'), await readText(folder, 'merges.txt'), {
      vocabSource: filePath(folder, 'vocab.json'),
      mergesSource: filePath(folder, 'merges.txt'),
    });
  }
  throw new ConfigError(`${folder.name}: no tokenizer (tokenizer.json, or vocab.json and merges.txt)`);
}
