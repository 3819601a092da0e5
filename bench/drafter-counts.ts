// Tokens per target pass of MDLM drafters on the bench passages (counts: they do not depend on the machine).
//   npx tsx bench/drafter-counts.ts PROMPTS DIR_A [DIR_B ...]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeDevice, dirFolder, generate, loadGPT2, loadMDLM, loadTokenizer, DiffusionDrafter } from '../src/node.js';
import './lib/lavapipe-env.js';
const [nS, ...dirs] = process.argv.slice(2);
const dev = await createNodeDevice();
const m = join(new URL('..', import.meta.url).pathname, 'models');
const tokenizer = await loadTokenizer(dirFolder(join(m, 'target')));
const target = await loadGPT2(dev, dirFolder(join(m, 'target')), { dtype: 'f16' });
const mdlms = await Promise.all(dirs.map((d) => loadMDLM(dev, dirFolder(d), { dtype: 'f16' })));
const prompts: string[] = JSON.parse(readFileSync(new URL('passages.json', import.meta.url), 'utf8')).slice(0, Number(nS));
const settings = [
  { name: 'greedy g6 64', temperature: 0, gamma: 6, maxNewTokens: 64, seeds: [0] },
  { name: 'greedy g6 128', temperature: 0, gamma: 6, maxNewTokens: 128, seeds: [0] },
  { name: 'temp1 g3 64', temperature: 1, gamma: 3, maxNewTokens: 64, seeds: [1, 2] },
];
for (const s of settings) {
  const line: string[] = [];
  for (const [i, mdlm] of mdlms.entries()) {
    let tokens = 0, passes = 0, acc = 0, drafted = 0;
    for (const [p, prompt] of prompts.entries()) for (const seed of s.seeds) {
      const drafter = new DiffusionDrafter(mdlm);
      const r = await generate(target, tokenizer, { prompt, method: 'specdiff', drafter, gamma: s.gamma, temperature: s.temperature, seed: seed * 1000 + p, maxNewTokens: s.maxNewTokens, stopAtEos: false }).result();
      drafter.dispose();
      tokens += r.stats.generatedTokens; passes += r.stats.targetPasses; acc += r.stats.acceptedTokens; drafted += r.stats.draftedTokens;
    }
    line.push(`${dirs[i].split('/').slice(-2).join('/')}: ${(tokens / passes).toFixed(3)} tok/pass (acc ${(acc / drafted).toFixed(3)})`);
  }
  console.log(s.name.padEnd(14), line.join('   '));
}
process.exit(0);
