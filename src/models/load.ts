/** Loading a model from a checkpoint folder (directory, URL base, in-memory files): config.json + safetensors. */
import type { Device } from '../tensor/device.js';
import { defaultWeightDType, type WeightDType } from './weights.js';

export { defaultWeightDType };
import { ConfigError, parseGPT2Config, parseMDLMConfig, type GPT2Config, type MDLMConfig } from './config.js';
import { GPT2, type ModelLoadOptions } from './gpt2.js';
import { MDLM, type MDLMLoadOptions } from './mdlm.js';
import { FetchError, fetchSource, openCheckpoint, type Checkpoint, type CheckpointFolder, type FetchOptions } from './safetensors.js';
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

/** A check of the parsed config against what the model must fit (e.g. its tokenizer), before any weight is read. */
export type ConfigCheck<C> = (config: C, source: string) => void;

/**
 * config.json parsed by `parse`, then the checkpoint (closed once the weights are on the GPU) loaded by `load`,
 * with the default weight format filled in and progress ending at the checkpoint's total (a model skips tensors
 * it does not use, e.g. GPT-2's causal-mask buffers).
 */
async function loadFolder<C, M, O extends ModelLoadOptions>(
  device: Device,
  folder: CheckpointFolder,
  parse: (json: unknown, source: string) => C,
  load: (ckpt: Checkpoint, config: C, opts: O) => Promise<M>,
  opts: O,
  check?: ConfigCheck<C>,
): Promise<M> {
  const source = `${folder.name}/config.json`;
  const config = parse(await readConfig(folder), source);
  check?.(config, source);
  const ckpt = await openCheckpoint(folder);
  try {
    let ended = false;
    const report = opts.onProgress;
    const onProgress =
      report &&
      ((loaded: number, total: number, name: string) => {
        ended = loaded >= total;
        report(loaded, total, name);
      });
    const model = await load(ckpt, config, { ...opts, dtype: opts.dtype ?? defaultWeightDType(device), onProgress });
    if (onProgress && !ended) {
      const total = ckpt.names().reduce((sum, name) => sum + ckpt.info(name).byteLength, 0);
      onProgress(total, total, ckpt.name);
    }
    return model;
  } finally {
    await ckpt.close();
  }
}

/** Weights in `opts.dtype`, by default defaultWeightDType(device). */
export function loadGPT2(device: Device, folder: CheckpointFolder, opts: ModelLoadOptions = {}, check?: ConfigCheck<GPT2Config>): Promise<GPT2> {
  return loadFolder(device, folder, parseGPT2Config, (ckpt, config, o) => GPT2.load(device, ckpt, config, o), opts, check);
}

/** Weights in `opts.dtype`, by default defaultWeightDType(device). */
export function loadMDLM(device: Device, folder: CheckpointFolder, opts: MDLMLoadOptions = {}, check?: ConfigCheck<MDLMConfig>): Promise<MDLM> {
  return loadFolder(device, folder, parseMDLMConfig, (ckpt, config, o) => MDLM.load(device, ckpt, config, o), opts, check);
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

/**
 * The file's text, or undefined (with why in `absent`) if the folder says it is absent; a server that fails to
 * answer is an error, not an absent file.
 */
async function readOptional(folder: CheckpointFolder, name: string, absent: string[]): Promise<string | undefined> {
  if (folder.exists) {
    if (await folder.exists(name)) return readText(folder, name);
    absent.push(`${name}: not found`);
    return undefined;
  }
  try {
    return await readText(folder, name);
  } catch (e) {
    if (e instanceof FetchError && !e.notFound) throw e;
    absent.push(e instanceof FetchError ? `${name}: HTTP ${e.status}` : `${name}: ${(e as Error).message}`);
    return undefined;
  }
}

/** tokenizer.json, or vocab.json + merges.txt. */
export async function loadTokenizer(folder: CheckpointFolder): Promise<Tokenizer> {
  const absent: string[] = [];
  const json = await readOptional(folder, 'tokenizer.json', absent);
  if (json !== undefined) return Tokenizer.fromTokenizerJson(json, filePath(folder, 'tokenizer.json'));
  const vocab = await readOptional(folder, 'vocab.json', absent);
  const merges = vocab === undefined ? undefined : await readOptional(folder, 'merges.txt', absent);
  if (vocab !== undefined && merges !== undefined) {
    return Tokenizer.fromVocabMerges(vocab, merges, { vocabSource: filePath(folder, 'vocab.json'), mergesSource: filePath(folder, 'merges.txt') });
  }
  throw new ConfigError(`${folder.name}: no tokenizer (tokenizer.json, or vocab.json and merges.txt): ${absent.join('; ')}`);
}
