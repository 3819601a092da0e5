/**
 * The bundled models in Node. They are published apart from the library, as the package
 * `specdiff-webgpu-models`; a clone of the repository holds them in its models/ folder.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MODELS_PACKAGE = 'specdiff-webgpu-models';
export const BUNDLED_MODELS = ['target', 'drafter-ar', 'drafter-mdlm'] as const;
export type BundledModel = (typeof BUNDLED_MODELS)[number];

/** Neither the models package nor a repository's models/ folder is there. */
export class BundledModelsError extends Error {
  override name = 'BundledModelsError';
}

/** The folder holding the bundled models (target/, drafter-ar/, drafter-mdlm/, prompt.txt). */
export function bundledModelsDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve(`${MODELS_PACKAGE}/package.json`));
  } catch (e) {
    // Not installed: a clone of the repository, run from src/ or dist/.
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
  }
  const clone = fileURLToPath(new URL('../../models/', import.meta.url));
  if (isModelsPackage(clone)) return clone;
  throw new BundledModelsError(
    `the bundled models are not installed: run \`npm install ${MODELS_PACKAGE}\`, or load your own checkpoint folders ` +
      `(dirFolder or urlFolder); looked for the package ${MODELS_PACKAGE} and for ${clone}`,
  );
}

/** The checkpoint folder of one bundled model, e.g. `dirFolder(bundledModelPath('target'))`. */
export function bundledModelPath(name: BundledModel): string {
  if (!BUNDLED_MODELS.includes(name)) throw new RangeError(`bundled model must be one of ${BUNDLED_MODELS.join(', ')}; got '${String(name)}'`);
  return join(bundledModelsDir(), name);
}

function isModelsPackage(dir: string): boolean {
  const manifest = join(dir, 'package.json');
  if (!existsSync(manifest)) return false;
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === MODELS_PACKAGE;
  } catch {
    return false;
  }
}
