/**
 * Generate text with SpecDiff from a Node script, the way a user of the package would.
 *   npx tsx examples/node/generate.ts "Your prompt"
 * (In your own project: import from 'specdiff-webgpu/node'.)
 */
import { bundledModelPath, createNodeDevice, dirFolder, loadPipeline } from '../../src/node.js';

const prompt = process.argv[2] ?? 'The old captain looked at the sea and said';

const device = await createNodeDevice();
console.error(`adapter: ${device.info.adapter}`);
const pipe = await loadPipeline(device, {
  target: dirFolder(bundledModelPath('target')),
  diffusionDrafter: dirFolder(bundledModelPath('drafter-mdlm')),
});

const run = pipe.generate(prompt, { method: 'specdiff', gamma: 8, steps: 4, temperature: 0, maxNewTokens: 48 });
process.stdout.write(prompt);
for await (const chunk of run) process.stdout.write(chunk.text);
const { stats } = await run.result();
console.log(`\n\n${stats.generatedTokens} tokens at ${stats.tokensPerSecond.toFixed(1)} tok/s; ` +
  `${stats.tokensPerTargetPass.toFixed(2)} tokens per target pass; acceptance ${(100 * stats.acceptanceRate).toFixed(0)}%`);
pipe.dispose();
device.destroy();
