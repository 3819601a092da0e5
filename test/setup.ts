// Tests run lavapipe as the CLI and benchmarks do: set before any test creates a device.
import { lavapipeThreads } from '../src/node.js';

process.env.LP_NUM_THREADS ??= String(lavapipeThreads());
process.env.XDG_RUNTIME_DIR ??= '/tmp';
