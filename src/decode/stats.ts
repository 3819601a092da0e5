/** Statistics of one generation: what was produced, how fast, and how speculation fared. */
import type { Method, Verification } from './options.js';

/** 'closed': the consumer left the stream early (break, return or throw inside `for await`). */
export type StopReason = 'length' | 'eos' | 'stop' | 'context' | 'aborted' | 'closed';

export interface GenerationStats {
  method: Method;
  promptTokens: number;
  generatedTokens: number;
  /** From the first forward to the last token, excluding the prompt's prefill, compilation and draftingWaitMs. */
  wallMs: number;
  /**
   * A staged start that waits for drafting (GenerateOptions.waitForDrafting): the time it waited after the first token,
   * less what this device spent compiling meanwhile (counted in compileMs).
   */
  draftingWaitMs: number;
  /** The prompt's pass through the target and, when speculating, the drafter's cache (without compilation). */
  prefillMs: number;
  /** Time spent compiling pipelines during the generation (0 after a warm-up with its settings). */
  compileMs: number;
  /** Pipelines compiled during the generation (0 after a warm-up with its settings). */
  pipelinesCompiled: number;
  /** Decoding rate: generated tokens / wallMs. */
  tokensPerSecond: number;
  /** Target forward passes after the prefill (one per AR token; one per draft-verify iteration). */
  targetPasses: number;
  /** Of them, plain target steps of a staged start, before drafting began (GenerateOptions.draftWhen). */
  stepsBeforeDrafting: number;
  /** Rows those passes scored: 1 per AR token, γ + 1 per verified draft, a token tree's rows with several drafts. */
  targetRows: number;
  /** Drafter forward passes (γ per AR draft; ≤ T per diffusion draft). */
  drafterPasses: number;
  /**
   * Steps of a diffusion drafter's draft head, one per drafted position it draws (each one block and the output
   * layer at one position; several drafts' rows stepped together count once).
   */
  draftHeadSteps: number;
  /** Drafted tokens the target verified (γ per iteration, fewer where a confidenceCutoff cut the draft). */
  draftedTokens: number;
  acceptedTokens: number;
  /** acceptedTokens / draftedTokens. */
  acceptanceRate: number;
  /** Drafted tokens accepted per iteration. */
  meanAccepted: number;
  /** Drafted tokens per iteration (γ; its mean when the draft length adapts). */
  meanDrafted: number;
  /**
   * Per draft position i (0-based): of the drafts at least i + 1 long, the fraction whose token i the
   * target accepted (so also every token before it: the rule goes left to right).
   */
  acceptanceByPosition: number[];
  /** Per draft position i: how many drafts were at least i + 1 long (the denominators of acceptanceByPosition). */
  draftedByPosition: number[];
  /** Histogram of accepted tokens per draft: entry k counts drafts that had exactly k tokens accepted. */
  acceptedLengthCounts: number[];
  /** Tokens emitted per target pass (accepted + the target's own token): the hardware-independent speedup bound. */
  tokensPerTargetPass: number;
  drafterPassesPerToken: number;
  draftMs: number;
  verifyMs: number;
  acceptMs: number;
  stopReason: StopReason;
  /** Effective settings (after clamping to the context). */
  gamma?: number;
  /** Longest draft of the adaptive draft length (= gamma: fixed). */
  maxGamma?: number;
  steps?: number;
  /** How sampled drafts were verified (undefined: greedy, or no drafter). */
  verification?: Verification;
}

export class StatsRecorder {
  targetPasses = 0;
  stepsBeforeDrafting = 0;
  targetRows = 0;
  drafterPasses = 0;
  draftHeadSteps = 0;
  drafted = 0;
  accepted = 0;
  iterations = 0;
  generated = 0;
  draftMs = 0;
  verifyMs = 0;
  acceptMs = 0;
  prefillMs = 0;
  draftingWaitMs = 0;
  private start = 0;
  private compileAtStart: number;
  private compileAtBegin = 0;
  private pipelinesAtStart: number;
  private reached: number[] = [];
  private acceptedAt: number[] = [];
  private acceptedLengths: number[] = [];

  /** Compilation is read from the device's counters and taken out of the phases it fell in. */
  constructor(private readonly device: { compileMs: number; pipelineCount: number } = { compileMs: 0, pipelineCount: 0 }) {
    this.compileAtStart = device.compileMs;
    this.pipelinesAtStart = device.pipelineCount;
  }

  /** One verified draft: its length and how many of its tokens the target accepted. */
  recordDraft(drafted: number, accepted: number): void {
    this.iterations++;
    this.drafted += drafted;
    this.accepted += accepted;
    for (let i = 0; i < drafted; i++) {
      this.reached[i] = (this.reached[i] ?? 0) + 1;
      if (i < accepted) this.acceptedAt[i] = (this.acceptedAt[i] ?? 0) + 1;
    }
    while (this.acceptedLengths.length <= accepted) this.acceptedLengths.push(0);
    this.acceptedLengths[accepted]++;
  }

  begin(): void {
    this.start = performance.now();
    this.compileAtBegin = this.device.compileMs;
  }

  finish(method: Method, promptTokens: number, stopReason: StopReason, extra: Partial<GenerationStats> = {}): GenerationStats {
    const compileMs = this.device.compileMs - this.compileAtStart;
    const wallMs = performance.now() - this.start - (this.device.compileMs - this.compileAtBegin) - this.draftingWaitMs;
    return {
      method,
      promptTokens,
      generatedTokens: this.generated,
      wallMs,
      draftingWaitMs: this.draftingWaitMs,
      prefillMs: this.prefillMs - (this.compileAtBegin - this.compileAtStart),
      compileMs,
      pipelinesCompiled: this.device.pipelineCount - this.pipelinesAtStart,
      tokensPerSecond: wallMs > 0 ? (this.generated * 1000) / wallMs : 0,
      targetPasses: this.targetPasses,
      stepsBeforeDrafting: this.stepsBeforeDrafting,
      targetRows: this.targetRows,
      drafterPasses: this.drafterPasses,
      draftHeadSteps: this.draftHeadSteps,
      draftedTokens: this.drafted,
      acceptedTokens: this.accepted,
      acceptanceRate: this.drafted ? this.accepted / this.drafted : 0,
      meanAccepted: this.iterations ? this.accepted / this.iterations : 0,
      meanDrafted: this.iterations ? this.drafted / this.iterations : 0,
      acceptanceByPosition: this.reached.map((n, i) => (this.acceptedAt[i] ?? 0) / n),
      draftedByPosition: [...this.reached],
      acceptedLengthCounts: [...this.acceptedLengths],
      tokensPerTargetPass: this.targetPasses ? this.generated / this.targetPasses : 0,
      drafterPassesPerToken: this.generated ? this.drafterPasses / this.generated : 0,
      draftMs: this.draftMs,
      verifyMs: this.verifyMs,
      acceptMs: this.acceptMs,
      stopReason,
      ...extra,
    };
  }
}
