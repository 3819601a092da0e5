/**
 * GPUBufferUsage / GPUMapMode bits as plain numbers: in Node the WebGPU globals only exist
 * once a GPU has been created, and this module must be importable before that.
 */
export const MAP_READ = 0x0001;
export const COPY_SRC = 0x0004;
export const COPY_DST = 0x0008;
export const UNIFORM = 0x0040;
export const STORAGE = 0x0080;
export const MAP_MODE_READ = 0x0001;
