/** Plain TypeScript references for the kernels, and helpers to compare against them. */
import { expect } from 'vitest';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return out;
}

/** C[M,N] = A[M,K] · W, W stored [K,N] or [N,K]. */
export function matmulRef(a: Float32Array, w: Float32Array, M: number, K: number, N: number, layout: 'kn' | 'nk'): Float32Array {
  const c = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * (layout === 'kn' ? w[k * N + n] : w[n * K + k]);
      c[m * N + n] = s;
    }
  }
  return c;
}

export function geluRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/**
 * Every element within atol + rtol·|expected|; on failure names the first bad index,
 * which is what points at a wrong index computation.
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5, atol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const ok = Math.abs(a - e) <= atol + rtol * Math.abs(e) || (Number.isNaN(a) && Number.isNaN(e));
    if (!ok) {
      throw new Error(`element ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)}; ${actual.length} elements)`);
    }
  }
}

// ---- references for the non-matmul ops (computed in double precision) ----------------------

export function siluRef(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** LayerNorm over rows of length D, with optional weight and bias. */
export function layerNormRef(x: ArrayLike<number>, D: number, w?: ArrayLike<number>, b?: ArrayLike<number>, eps = 1e-5): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let mean = 0;
    for (let i = 0; i < D; i++) mean += x[r * D + i];
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[r * D + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) {
      out[r * D + i] = (x[r * D + i] - mean) * inv * (w ? w[i] : 1) + (b ? b[i] : 0);
    }
  }
  return out;
}

/** softmax(alpha · x) or its log over rows of length D. */
export function softmaxRef(x: ArrayLike<number>, D: number, alpha = 1, log = false): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let m = -Infinity;
    for (let i = 0; i < D; i++) m = Math.max(m, alpha * x[r * D + i]);
    let s = 0;
    for (let i = 0; i < D; i++) s += Math.exp(alpha * x[r * D + i] - m);
    for (let i = 0; i < D; i++) {
      const z = alpha * x[r * D + i] - m;
      out[r * D + i] = log ? z - Math.log(s) : Math.exp(z) / s;
    }
  }
  return out;
}

/** Index of the first maximum of each row. */
export function argmaxRef(x: ArrayLike<number>, D: number): Int32Array {
  const out = new Int32Array(x.length / D);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let i = 1; i < D; i++) if (x[r * D + i] > x[r * D + best]) best = i;
    out[r] = best;
  }
  return out;
}

/**
 * Multi-head attention: q [n, H·hd] against k, v [L, H·hd]; query i sits at position L - n + i
 * and, when causal, sees keys 0..L - n + i. Numerically stable softmax in double precision.
 */
export function attentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>,
  n: number, L: number, H: number, hd: number, causal: boolean, scale = 1 / Math.sqrt(hd), bidirectionalTail = 0,
): Float32Array {
  const d = H * hd;
  const out = new Float32Array(n * d);
  const s = new Float64Array(L);
  for (let i = 0; i < n; i++) {
    const end = causal && i < n - bidirectionalTail ? L - n + i + 1 : L;
    for (let h = 0; h < H; h++) {
      let m = -Infinity;
      for (let j = 0; j < end; j++) {
        let dot = 0;
        for (let e = 0; e < hd; e++) dot += q[i * d + h * hd + e] * k[j * d + h * hd + e];
        s[j] = dot * scale;
        m = Math.max(m, s[j]);
      }
      let sum = 0;
      for (let j = 0; j < end; j++) sum += (s[j] = Math.exp(s[j] - m));
      for (let e = 0; e < hd; e++) {
        let acc = 0;
        for (let j = 0; j < end; j++) acc += s[j] * v[j * d + h * hd + e];
        out[i * d + h * hd + e] = acc / sum;
      }
    }
  }
  return out;
}

/**
 * Rotate-half rotary on x [n, H, hd] at positions pos0..: out[i] = x[i]cos − x[i+hd/2]sin,
 * out[i+hd/2] = x[i+hd/2]cos + x[i]sin, angle = pos · base^(−2i/hd).
 */
export function rotaryRef(x: ArrayLike<number>, n: number, H: number, hd: number, pos0 = 0, base = 10000): Float32Array {
  const out = new Float32Array(x.length);
  const half = hd / 2;
  for (let r = 0; r < n; r++) {
    for (let h = 0; h < H; h++) {
      const o = (r * H + h) * hd;
      for (let i = 0; i < half; i++) {
        const ang = (pos0 + r) * base ** ((-2 * i) / hd);
        const [c, s] = [Math.cos(ang), Math.sin(ang)];
        out[o + i] = x[o + i] * c - x[o + i + half] * s;
        out[o + i + half] = x[o + i + half] * c + x[o + i] * s;
      }
    }
  }
  return out;
}

/**
 * softmax(logits / temperature), then the top-k tokens (ties with the k-th kept), then the
 * smallest top-p nucleus of what is left (ties with its last token kept), renormalised. Built
 * with a sort, independently of the kernel's threshold search.
 */
export function filteredProbsRef(logits: ArrayLike<number>, V: number, f: { temperature: number; topK?: number; topP?: number }): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / V; r++) {
    const x = Array.from({ length: V }, (_, i) => logits[r * V + i]);
    const m = x.reduce((a, b) => Math.max(a, b), -Infinity);
    let e = x.map((v) => Math.exp((v - m) / f.temperature));
    const k = f.topK ?? 0;
    if (k > 0 && k < V) {
      const kth = [...x].sort((a, b) => b - a)[k - 1];
      e = e.map((p, i) => (x[i] >= kth ? p : 0));
    }
    const p = f.topP ?? 1;
    if (p < 1) {
      const total = e.reduce((a, b) => a + b, 0);
      const sorted = [...e].sort((a, b) => b - a);
      let acc = 0;
      let th = sorted[0];
      for (const v of sorted) {
        acc += v;
        th = v;
        if (acc >= p * total) break;
      }
      e = e.map((q) => (q >= th ? q : 0));
    }
    const s = e.reduce((a, b) => a + b, 0);
    for (let i = 0; i < V; i++) out[r * V + i] = e[i] / s;
  }
  return out;
}

/** The first index whose cumulative weight exceeds u · total (negative weights count as zero). */
export function sampleRef(w: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < w.length; i++) total += Math.max(w[i], 0);
  let acc = 0;
  let last = -1;
  for (let i = 0; i < w.length; i++) {
    const x = Math.max(w[i], 0);
    if (x > 0) last = i;
    acc += x;
    if (acc > u * total && x > 0) return i;
  }
  return last;
}
