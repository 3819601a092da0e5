/**
 * Small random checkpoints written as Hugging Face folders (config.json + model.safetensors, and a
 * byte-level tokenizer for the target), for tests that load models the way users do: by URL or path.
 *
 * The vocabulary is the 256 GPT-2 byte tokens plus <|endoftext|>, with no merges. Both models are
 * nudged towards a few common letters so that the text reads as letters, not control bytes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../src/models/safetensors.js';
import { BYTE_CHARS } from '../../src/models/tokenizer.js';
import { gpt2Shapes, mdlmShapes, randomTensors } from '../helpers/tiny-models.js';

const EOS = 256;
const VOCAB = 257;
/** Favoured bytes: the space most, then letters by English frequency. */
const COMMON = ' etaoinshrdlu';

/** Per token id: how much its logit is raised. */
function boosts(strength: number): Float32Array {
  const b = new Float32Array(VOCAB);
  [...COMMON].forEach((c, i) => (b[c.charCodeAt(0)] = i === 0 ? strength : 0.6 * strength * (1 - i / (2 * COMMON.length))));
  return b;
}

async function writeFolder(dir: string, config: object, tensors: Record<string, TensorToWrite>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await writeFile(join(dir, 'model.safetensors'), writeSafetensors(tensors));
}

export interface TinyFolders {
  target: string;
  drafter: string;
}

/**
 * Writes root/target (GPT-2 + tokenizer: vocab.json and merges.txt, and with `tokenizerJson` the same as
 * tokenizer.json), root/drafter-mdlm (MDLM) and root/prompt.txt.
 */
export async function writeTinyFolders(root: string, { d = 32, layers = 2, heads = 2, positions = 128, seed = 1, DRAFT_NOISE = 0.2, tokenizerJson = false } = {}): Promise<TinyFolders> {
  const target = join(root, 'target');
  const drafter = join(root, 'drafter-mdlm');
  const bias = boosts(10);

  // GPT-2: logits = ln_f(x) · wteᵀ. Dimension 0 of row i is bias[i]/LIFT and ln_f's
  // bias puts LIFT there, so their logits rise by about bias[i] (the random part spreads about 2).
  const gt = randomTensors(gpt2Shapes(VOCAB, d, layers, positions), seed, 0.3, (n) => /ln_.*weight$/.test(n));
  const LIFT = 20;
  gt['ln_f.bias'].data.fill(0)[0] = LIFT; // no other constant per-token offset: the context picks the letter
  for (let t = 0; t < VOCAB; t++) gt['wte.weight'].data[t * d] = bias[t] / LIFT;
  await writeFolder(target, { model_type: 'gpt2', vocab_size: VOCAB, n_positions: positions, n_embd: d, n_layer: layers, n_head: heads, eos_token_id: EOS }, gt);
  const vocab: Record<string, number> = Object.fromEntries(BYTE_CHARS.map((c, b) => [c, b]));
  vocab['<|endoftext|>'] = EOS;
  await writeFile(join(target, 'vocab.json'), JSON.stringify(vocab));
  await writeFile(join(target, 'merges.txt'), '#version: 0.2\n');
  if (tokenizerJson) await writeFile(join(target, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab, merges: [] } }));

  // MDLM: the target's vocabulary plus its mask token; the output bias carries the same preference.
  const V = VOCAB + 1;
  const c = 16;
  const mt = randomTensors(mdlmShapes(V, d, layers, c), seed + 1, 0.3, (n) => /norm.*weight$/.test(n));
  mt['backbone.output_layer.linear.bias'].data.set(bias);
  mt['backbone.output_layer.linear.weight'].data.forEach((v, i, a) => (a[i] = v * DRAFT_NOISE));
  await writeFolder(drafter, { model_type: 'mdlm', vocab_size: V, hidden_dim: d, n_blocks: layers, n_heads: heads, cond_dim: c, model_length: positions, time_conditioning: false }, mt);

  await writeFile(join(root, 'prompt.txt'), 'The ship sailed\n');
  return { target, drafter };
}
