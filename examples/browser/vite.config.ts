/**
 * `npm run example:browser` serves this page with the bundled models under /models/;
 * `npm run build:browser` writes static files to examples/browser/dist (serve models/ beside them,
 * or point the page at them with ?models=URL).
 */
import { createReadStream, statSync } from 'node:fs';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connect, Plugin } from 'vite';
import { defineConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const MODELS = join(here, '..', '..', 'models');

/** Serves the repository's models/ folder at /models/ (dev server and preview). */
function serveModels(): Plugin {
  const handler: Connect.NextHandleFunction = (req, res, next) => {
    const path = decodeURIComponent((req.url ?? '').split('?')[0]);
    const file = normalize(join(MODELS, path));
    if (!file.startsWith(MODELS + sep)) return next();
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile()) return next();
      size = st.size;
    } catch {
      res.statusCode = 404;
      return res.end();
    }
    res.setHeader('Content-Length', size);
    res.setHeader('Content-Type', file.endsWith('.json') ? 'application/json' : 'application/octet-stream');
    createReadStream(file).pipe(res);
  };
  return {
    name: 'serve-models',
    configureServer: (server) => void server.middlewares.use('/models', handler),
    configurePreviewServer: (server) => void server.middlewares.use('/models', handler),
  };
}

export default defineConfig({
  root: here,
  base: './',
  appType: 'mpa', // unknown paths are 404s, not index.html: the loader probes for optional files
  plugins: [serveModels()],
  worker: { format: 'es' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  server: { fs: { allow: [join(here, '..', '..')] } },
});
