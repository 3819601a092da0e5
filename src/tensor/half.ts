/** IEEE half-precision conversion on the CPU (round to nearest even), bit-exact. */

/** IEEE binary32 bits to binary16 bits, rounding to nearest even; NaNs stay NaN (quiet), overflow becomes inf. */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13));
  const halfExponent = exponent - 112; // rebias 127 -> 15
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent > 0) return sign | roundShift((halfExponent << 23) | mantissa, 13);
  // Subnormal result: shift the full significand; 25+ places is below half the smallest subnormal.
  const shift = 14 - halfExponent;
  return shift > 24 ? sign : sign | roundShift(0x800000 | mantissa, shift);
}

/** value >> shift, rounded to nearest even; a carry out of the mantissa correctly bumps the exponent. */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

/** IEEE binary16 bits to binary32 bits (exact); subnormals are renormalised. */
export function f16BitsToF32Bits(half: number): number {
  const sign = (half & 0x8000) << 16;
  const exponent = (half >>> 10) & 0x1f;
  let mantissa = half & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  let e = 113;
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

const scratch = new DataView(new ArrayBuffer(4));

/** Rounds x to f32 first, then to f16 bits. */
export function f32ToF16Bits(x: number): number {
  scratch.setFloat32(0, x);
  return f32BitsToF16Bits(scratch.getUint32(0));
}

export function f16BitsToF32(half: number): number {
  scratch.setUint32(0, f16BitsToF32Bits(half));
  return scratch.getFloat32(0);
}

export function f32ArrayToF16Bits(a: ArrayLike<number>): Uint16Array<ArrayBuffer> {
  const bits = new Uint32Array(Float32Array.from(a).buffer);
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

export function f16BitsToF32Array(a: Uint16Array): Float32Array<ArrayBuffer> {
  const out = new Uint32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f16BitsToF32Bits(a[i]);
  return new Float32Array(out.buffer);
}
