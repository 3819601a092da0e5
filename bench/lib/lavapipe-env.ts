/**
 * Imported by every benchmark entry point: lavapipe runs with the recommended LP_NUM_THREADS
 * (unless set), as under the CLI. Lavapipe reads it when Dawn starts, after all imports.
 */
import { lavapipeThreads } from '../../src/node.js';

process.env.LP_NUM_THREADS ??= String(lavapipeThreads());
