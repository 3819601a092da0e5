export { matmul, type MatmulOptions } from './matmul.js';
