/** Messages between the page (main.ts: renders) and the worker (worker.ts: loads models, generates). */
import type { DeviceInfo, GenerationStats } from '../../src/index.js';

export type Method = 'ar' | 'specdiff';

export interface Settings {
  prompt: string;
  gamma: number;
  /** Longest draft: the draft length grows to it after drafts accepted whole (≤ gamma: fixed). */
  maxGamma: number;
  steps: number;
  temperature: number;
  maxNewTokens: number;
  seed: number;
}

export type ToWorker =
  /** base: the URL folder holding target/ and drafter-mdlm/ (and prompt.txt). */
  | { type: 'load'; base: string; dtype: 'auto' | 'f16' | 'f32' }
  | { type: 'generate'; settings: Settings }
  | { type: 'stop' };

/** A run of tokens decoded together, and whether they were accepted draft tokens. */
export interface Piece {
  text: string;
  drafted: boolean;
}

export type FromWorker =
  | { type: 'adapter'; info: DeviceInfo }
  | { type: 'file'; url: string; fromCache: boolean }
  | { type: 'progress'; url: string; loaded: number; total: number }
  | { type: 'status'; text: string }
  | { type: 'ready'; dtype: 'f16' | 'f32'; prompt: string | null }
  | { type: 'start'; method: Method }
  /** elapsedMs: since this method's generation began (prefill included), on the worker's clock. */
  | { type: 'tokens'; method: Method; pieces: Piece[]; count: number; elapsedMs: number }
  /** One verified draft: its length and how many of its tokens the target accepted. */
  | { type: 'step'; method: Method; drafted: number; accepted: number }
  | { type: 'done'; method: Method; text: string; stats: GenerationStats }
  | { type: 'finished' }
  /** fatal: the page cannot go on (no WebGPU, models missing). */
  | { type: 'error'; message: string; fatal: boolean; noWebGPU?: boolean };
