/**
 * npm run bench:decode: with --regimes, AR vs speculative vs SpecDiff in the regimes users run,
 * held-out and out-of-domain prompts (decode-regimes.ts); otherwise the γ × T grid, window sweep
 * and head-to-heads (decode-grid.ts). Each file documents its own options.
 */
await import(process.argv.includes('--regimes') ? './decode-regimes.js' : './decode-grid.js');
