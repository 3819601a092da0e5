/** Embedding gather and strided 2-D copy (slice / concat / cache writes). */
import { paramsStruct, weightArray, type WeightType } from './common.js';

export const EMBED_PARAMS = 'uuuuuuu';

/**
 * Out[i, :] = Table[ids[i] - rowBase, :] for the ids that fall in this table chunk
 * [rowBase, rowBase + rowCount); a table larger than one binding is gathered chunk by chunk.
 * The first chunk's dispatch (zeroOthers = 1) writes zero rows for the other ids, so ids
 * outside the table give zero rows without a separate clearing pass. Id i is Ids[idBase + i·idStride].
 */
export function embeddingWGSL(wtype: WeightType): string {
  return `${paramsStruct(['n', 'D', 'rowBase', 'rowCount', 'zeroOthers', 'idBase', 'idStride'], EMBED_PARAMS, 3)}
@group(0) @binding(0) var<storage, read> Ids: array<i32>;
${weightArray('table', 1, wtype)}
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = wid.y;
  let d = wid.x * 64u + lid.x;
  if (i >= P.n || d >= P.D) { return; }
  let r = u32(Ids[P.idBase + i * P.idStride]) - P.rowBase;
  if (r < P.rowCount) {
    Out[i * P.D + d] = table(r * P.D + d);
  } else if (P.zeroOthers != 0u) {
    Out[i * P.D + d] = 0.0;
  }
}`;
}

export const COPY_PARAMS = 'uuuuuuuu';

/** Dst[dstOff + r·dstStride + c] = Src[srcOff + r·srcStride + c] for r < rows, c < cols (32-bit elements). */
export function copy2dWGSL(): string {
  return `${paramsStruct(['rows', 'cols', 'srcOff', 'srcStride', 'dstOff', 'dstStride', 'pad0', 'pad1'], COPY_PARAMS, 2)}
@group(0) @binding(0) var<storage, read> Src: array<u32>;
@group(0) @binding(1) var<storage, read_write> Dst: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wid.y + wid.z * 65535u;
  let c = wid.x * 64u + lid.x;
  if (r >= P.rows || c >= P.cols) { return; }
  Dst[P.dstOff + r * P.dstStride + c] = Src[P.srcOff + r * P.srcStride + c];
}`;
}

export const ROWCOPY_PARAMS = 'uuuu';

/** Dst[DstIdx[i], :] = Src[SrcIdx[i], :] for i < n, rows of C 32-bit elements (an indexed gather-scatter). */
export function indexedRowCopyWGSL(): string {
  return `${paramsStruct(['n', 'C', 'srcRows', 'dstRows'], ROWCOPY_PARAMS, 4)}
@group(0) @binding(0) var<storage, read> Src: array<u32>;
@group(0) @binding(1) var<storage, read> SrcIdx: array<i32>;
@group(0) @binding(2) var<storage, read> DstIdx: array<i32>;
@group(0) @binding(3) var<storage, read_write> Dst: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = wid.y;
  let c = wid.x * 64u + lid.x;
  if (i >= P.n || c >= P.C) { return; }
  let s = u32(SrcIdx[i]);
  let d = u32(DstIdx[i]);
  if (s >= P.srcRows || d >= P.dstRows) { return; }
  Dst[d * P.C + c] = Src[s * P.C + c];
}`;
}
