/** Rows of an existing tensor as an op's destination or source, so that filling a larger tensor needs no copies. */
import { assertShape } from '../errors.js';
import type { Tensor } from '../tensor.js';

/**
 * Rows `row`, `row + stride`, … of `tensor`: where an op writes its rows (or reads them) in place of a tensor of
 * its own, so that a caller filling a larger tensor row by row needs no copies.
 */
export interface RowsOf {
  tensor: Tensor;
  row: number;
  /** Rows between consecutive ones (default 1). */
  stride?: number;
}

/** `count` ids read in place from rows of an i32 tensor. */
export type IdRows = RowsOf & { count: number };

/** Throws unless `rows` rows of width `width` from `r.row`, `r.stride` apart, lie inside r.tensor. */
export function checkRowsOf(r: RowsOf, rows: number, width: number, op: string): number {
  const stride = r.stride ?? 1;
  r.tensor.assertLive(op);
  const total = r.tensor.size / width;
  const last = r.row + (rows - 1) * stride;
  assertShape(Number.isInteger(r.row) && r.row >= 0 && Number.isInteger(stride) && stride >= 1 && Number.isInteger(total) && last < total, op,
    `${rows} rows of ${width} from row ${r.row}, ${stride} apart, run past [${r.tensor.shape}]`);
  return stride;
}
