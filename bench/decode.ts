/**
 * npm run bench:decode: one mode per file under bench/decode/, each documenting its own flags.
 *   --regimes   AR vs speculative vs SpecDiff in the regimes users run, held-out and out-of-domain prompts (regimes.ts)
 *   --compare   only a head-to-head of every γ × T × window × cutoff × longest draft, to choose defaults (compare.ts)
 *   --pass-cost where one iteration of each method spends its time: recording, waiting, dispatches, GPU (pass-cost.ts)
 *   otherwise   the γ × T grid, the window sweep, a head-to-head at the winners and a GPU profile (grid.ts)
 */
import './lib/lavapipe-env.js';

if (process.argv.includes('--regimes')) await import('./decode/regimes.js');
else if (process.argv.includes('--compare')) await import('./decode/compare.js');
else if (process.argv.includes('--pass-cost')) await import('./decode/pass-cost.js');
else await import('./decode/grid.js');
