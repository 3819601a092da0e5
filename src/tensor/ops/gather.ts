/** Embedding gather, and slicing / concatenation through one strided 2-D copy kernel. */
import { assertShape, shapeStr } from '../errors.js';
import { Tensor, BYTES } from '../tensor.js';
import { kernelSpec } from '../spec.js';
import { COPY_PARAMS, copy2dWGSL, EMBED_PARAMS, embeddingWGSL, indexedRowCopyWGSL, ROWCOPY_PARAMS } from '../../shaders/gather.js';
import { weightChunks } from './matmul.js';
import { checkRowsOf, type IdRows } from './rows.js';

/**
 * table[ids]: ids i32 [n] → [n, D]; ids given as rows of a larger i32 tensor (`count` of them) are read in place.
 * Ids outside the table give zero rows (callers validate ids that come from users). A table past the binding
 * limit is gathered in row chunks.
 */
export function embedding(table: Tensor, ids: Tensor | IdRows): Tensor {
  table.assertLive('embedding');
  const source = ids instanceof Tensor ? ids : ids.tensor;
  source.assertLive('embedding');
  assertShape(table.shape.length === 2, 'embedding', `table must be 2-D, got ${shapeStr(table.shape)}`);
  assertShape(source.dtype === 'i32', 'embedding', `ids must be i32, got ${source.dtype}`);
  assertShape(table.dtype === 'f32' || table.dtype === 'f16', 'embedding', `table must be f32 or f16`);
  const [rows, D] = table.shape;
  const n = ids instanceof Tensor ? ids.size : ids.count;
  const idStride = ids instanceof Tensor || n === 0 ? 1 : checkRowsOf(ids, n, 1, 'embedding');
  const idBase = ids instanceof Tensor ? 0 : ids.row;
  const out = Tensor.empty(table.device, ids instanceof Tensor ? [...ids.shape, D] : [n, D]);
  const wtype = table.dtype as 'f32' | 'f16';
  const spec = kernelSpec(`embedding_${wtype}`, ['r', 'r', 'w'], EMBED_PARAMS, () => embeddingWGSL(wtype));
  if (n === 0) return out;
  weightChunks(table.device, 'nk', table, D, rows).forEach((c, i) => {
    table.device.dispatch(
      spec,
      [source.binding, { buffer: table.buffer, offset: c.byteOffset, size: c.byteLength }, out.binding],
      [n, D, c.nBase, c.nCount, i === 0 ? 1 : 0, idBase, idStride],
      [Math.ceil(D / 64), n],
    );
  });
  return out;
}

export interface Copy2D {
  rows: number;
  cols: number;
  srcOffset: number;
  srcStride: number;
  dstOffset: number;
  dstStride: number;
}

/** Copies a rows×cols block of 32-bit elements between two tensors with their own strides and offsets. */
export function copy2d(src: Tensor, dst: Tensor, c: Copy2D): void {
  src.assertLive('copy2d');
  dst.assertLive('copy2d');
  assertShape(BYTES[src.dtype] === 4 && BYTES[dst.dtype] === 4, 'copy2d', 'copies 32-bit elements only');
  if (c.rows === 0 || c.cols === 0) return;
  const lastSrc = c.srcOffset + (c.rows - 1) * c.srcStride + c.cols;
  const lastDst = c.dstOffset + (c.rows - 1) * c.dstStride + c.cols;
  assertShape(lastSrc <= src.size && lastDst <= dst.size, 'copy2d', `block ${c.rows}×${c.cols} runs past a tensor (${lastSrc}/${src.size}, ${lastDst}/${dst.size})`);
  const spec = kernelSpec('copy2d', ['r', 'w'], COPY_PARAMS, copy2dWGSL);
  const gy = Math.min(c.rows, 65535);
  const gz = Math.ceil(c.rows / 65535);
  src.device.dispatch(spec, [src.binding, dst.binding], [c.rows, c.cols, c.srcOffset, c.srcStride, c.dstOffset, c.dstStride, 0, 0], [Math.ceil(c.cols / 64), gy, gz]);
}

/** x[..., start:end] along the last axis, or along the first axis with axis = 0. */
export function slice(x: Tensor, start: number, end: number, axis: 0 | -1 = -1): Tensor {
  const last = axis === -1 ? x.shape.length - 1 : 0;
  const D = x.shape[last];
  assertShape(0 <= start && start <= end && end <= D, 'slice', `range [${start}, ${end}) outside axis of size ${D} in ${shapeStr(x.shape)}`);
  const shape = [...x.shape];
  shape[last] = end - start;
  const out = Tensor.empty(x.device, shape, x.dtype);
  if (axis === 0) {
    const row = x.size / Math.max(D, 1);
    const at = start * row * BYTES[x.dtype];
    // Buffer copies move whole 32-bit words; an unaligned one would invalidate the whole batch.
    assertShape(at % 4 === 0, 'slice', `${x.dtype} rows from ${start} of ${shapeStr(x.shape)} start at byte ${at}, not a multiple of 4`);
    x.device.copy(x.buffer, at, out.buffer, 0, out.byteLength);
  } else {
    const rows = x.size / Math.max(D, 1);
    copy2d(x, out, { rows, cols: end - start, srcOffset: start, srcStride: D, dstOffset: 0, dstStride: end - start });
  }
  return out;
}

/** Concatenation along the last axis, or along the first with axis = 0. */
export function concat(xs: Tensor[], axis: 0 | -1 = -1): Tensor {
  assertShape(xs.length > 0, 'concat', 'needs at least one tensor');
  const rank = xs[0].shape.length;
  const ax = axis === -1 ? rank - 1 : 0;
  for (const x of xs) {
    assertShape(
      x.dtype === xs[0].dtype && x.shape.length === rank && x.shape.every((d, i) => i === ax || d === xs[0].shape[i]),
      'concat',
      `shapes ${xs.map((t) => shapeStr(t.shape)).join(', ')} differ off axis ${ax}`,
    );
  }
  const shape = [...xs[0].shape];
  shape[ax] = xs.reduce((s, x) => s + x.shape[ax], 0);
  const out = Tensor.empty(xs[0].device, shape, xs[0].dtype);
  let at = 0;
  for (const x of xs) {
    if (ax === 0) {
      // Buffer copies move whole 32-bit words; an unaligned one would invalidate the whole batch.
      assertShape(at % 4 === 0, 'concat', `${x.dtype} part ${shapeStr(x.shape)} would start at byte ${at}, not a multiple of 4`);
      out.device.copy(x.buffer, 0, out.buffer, at, x.byteLength);
      at += x.byteLength;
    } else {
      const D = x.shape[ax];
      copy2d(x, out, { rows: x.size / Math.max(D, 1), cols: D, srcOffset: 0, srcStride: D, dstOffset: at, dstStride: shape[ax] });
      at += D;
    }
  }
  return out;
}

/**
 * dst[dstRows[i], :] = src[srcRows[i], :] in place, for 32-bit tensors whose last axes match;
 * row indices are i32 tensors of equal size. Out-of-range indices are skipped.
 */
export function copyRows(src: Tensor, srcRows: Tensor, dst: Tensor, dstRows: Tensor): void {
  src.assertLive('copyRows');
  dst.assertLive('copyRows');
  const C = src.shape[src.shape.length - 1] ?? 1;
  const dC = dst.shape[dst.shape.length - 1] ?? 1;
  assertShape(BYTES[src.dtype] === 4 && BYTES[dst.dtype] === 4, 'copyRows', 'copies 32-bit elements only');
  assertShape(src.shape.length === dst.shape.length && C === dC, 'copyRows', `rows of ${shapeStr(src.shape)} and ${shapeStr(dst.shape)} differ`);
  assertShape(srcRows.size === dstRows.size && srcRows.dtype === 'i32' && dstRows.dtype === 'i32', 'copyRows', 'row indices must be i32 of equal size');
  const n = srcRows.size;
  if (n === 0) return;
  const spec = kernelSpec('indexed_row_copy', ['r', 'r', 'r', 'w'], ROWCOPY_PARAMS, indexedRowCopyWGSL);
  src.device.dispatch(spec, [src.binding, srcRows.binding, dstRows.binding, dst.binding], [n, C, src.size / C, dst.size / C], [Math.ceil(C / 64), n]);
}
