// The bundled models in Node: the specdiff-webgpu-models package when installed, else the models/ folder of a
// clone of the repository, else a typed error that says what to install.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundledModelPath, BundledModelsError, MODELS_PACKAGE } from '../src/node.js';

describe('bundledModelPath', () => {
  it("in a clone of the repository, finds the models in its models/ folder", () => {
    expect(bundledModelPath('target')).toBe(new URL('../models/target', import.meta.url).pathname);
    expect(existsSync(join(bundledModelPath('drafter-mdlm'), 'config.json'))).toBe(true);
  });

  it('refuses a name that is not a bundled model, naming those that are', () => {
    expect(() => bundledModelPath('gpt2' as never)).toThrow("bundled model must be one of target, drafter-ar, drafter-mdlm; got 'gpt2'");
  });

  it('with neither the package nor a clone, is a BundledModelsError naming the package to install', async () => {
    // The same module, copied where no models/ folder and no node_modules lie above it.
    const dir = await mkdtemp(join(tmpdir(), 'specdiff-bundled-'));
    try {
      await copyFile(new URL('../src/models/bundled-node.ts', import.meta.url), join(dir, 'bundled-node.ts'));
      const lone = (await import(join(dir, 'bundled-node.ts'))) as typeof import('../src/models/bundled-node.js');
      const e = (() => {
        try {
          lone.bundledModelPath('target');
        } catch (x) {
          return x as Error;
        }
      })();
      expect(e?.name).toBe(BundledModelsError.name);
      expect(e?.message).toContain(`npm install ${MODELS_PACKAGE}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
