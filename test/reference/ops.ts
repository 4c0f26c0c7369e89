/**
 * Reference CNN operators written as plain loops, independent of ONNX and onnxruntime, so that
 * compiled graphs can be checked against them. All tensors are NCHW, computed in float64.
 */

export type Data = Float32Array | Float64Array | number[];
export interface Result { data: Float64Array; shape: number[] }

export interface Conv2dOptions {
  stride?: [number, number];
  /** [top, left, bottom, right], like ONNX pads for 2-D. */
  pads?: [number, number, number, number];
  dilation?: [number, number];
  groups?: number;
}

export interface Pool2dOptions {
  kernel: [number, number];
  stride?: [number, number];
  pads?: [number, number, number, number];
  /** PyTorch's ceil_mode: ceil instead of floor in the output size, unless the last window would start past the input and its top/left padding. */
  ceil?: boolean;
}

const outSize = (size: number, k: number, stride: number, dil: number, padA: number, padB: number) =>
  Math.floor((size + padA + padB - dil * (k - 1) - 1) / stride) + 1;

/** Cross-correlation (what CNN libraries call convolution). Weights are [M, C/groups, kH, kW]. */
export function conv2d(x: Data, xShape: number[], w: Data, wShape: number[], bias: Data | null, o: Conv2dOptions = {}): Result {
  const [N, C, H, W] = xShape;
  const [M, Cg, kH, kW] = wShape;
  const [sh, sw] = o.stride ?? [1, 1];
  const [pt, pl, pb, pr] = o.pads ?? [0, 0, 0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const groups = o.groups ?? 1;
  if (Cg * groups !== C || M % groups !== 0) throw new Error('conv2d: channels do not divide into groups');
  const oH = outSize(H, kH, sh, dh, pt, pb), oW = outSize(W, kW, sw, dw, pl, pr);
  const out = new Float64Array(N * M * oH * oW);
  const mPerGroup = M / groups;
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      const g = Math.floor(m / mPerGroup);
      for (let i = 0; i < oH; i++)
        for (let j = 0; j < oW; j++) {
          let sum = bias ? bias[m] : 0;
          for (let c = 0; c < Cg; c++)
            for (let ki = 0; ki < kH; ki++)
              for (let kj = 0; kj < kW; kj++) {
                const y = i * sh - pt + ki * dh, xx = j * sw - pl + kj * dw;
                if (y < 0 || y >= H || xx < 0 || xx >= W) continue; // zero padding
                sum += x[((n * C + g * Cg + c) * H + y) * W + xx] * w[((m * Cg + c) * kH + ki) * kW + kj];
              }
          out[((n * M + m) * oH + i) * oW + j] = sum;
        }
    }
  return { data: out, shape: [N, M, oH, oW] };
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  /** Rows and columns added at the end of the output. */
  outputPadding?: [number, number];
}

/**
 * Transposed convolution (PyTorch's ConvTranspose2d): each input pixel (i, j) adds its value
 * times the kernel at output (i·s + ki·d - top, j·s + kj·d - left); weights are [C, M/groups, kH, kW].
 */
export function convTranspose2d(x: Data, xShape: number[], w: Data, wShape: number[], bias: Data | null, o: ConvTranspose2dOptions = {}): Result {
  const [N, C, H, W] = xShape;
  const [C2, Mg, kH, kW] = wShape;
  const [sh, sw] = o.stride ?? [1, 1];
  const [pt, pl, pb, pr] = o.pads ?? [0, 0, 0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const [oph, opw] = o.outputPadding ?? [0, 0];
  const groups = o.groups ?? 1;
  if (C2 !== C || C % groups !== 0) throw new Error('convTranspose2d: channels do not divide into groups');
  const M = Mg * groups, Cg = C / groups;
  const oH = (H - 1) * sh - pt - pb + dh * (kH - 1) + oph + 1, oW = (W - 1) * sw - pl - pr + dw * (kW - 1) + opw + 1;
  const out = new Float64Array(N * M * oH * oW);
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) for (let k = 0; k < oH * oW; k++) out[(n * M + m) * oH * oW + k] = bias ? bias[m] : 0;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const g = Math.floor(c / Cg);
      for (let i = 0; i < H; i++)
        for (let j = 0; j < W; j++) {
          const v = x[((n * C + c) * H + i) * W + j];
          for (let ml = 0; ml < Mg; ml++)
            for (let ki = 0; ki < kH; ki++)
              for (let kj = 0; kj < kW; kj++) {
                const p = i * sh + ki * dh - pt, q = j * sw + kj * dw - pl;
                if (p < 0 || p >= oH || q < 0 || q >= oW) continue; // cropped by the padding
                out[((n * M + g * Mg + ml) * oH + p) * oW + q] += v * w[((c * Mg + ml) * kH + ki) * kW + kj];
              }
        }
    }
  return { data: out, shape: [N, M, oH, oW] };
}

function poolSize(size: number, k: number, stride: number, padA: number, padB: number, ceil: boolean): number {
  if (!ceil) return outSize(size, k, stride, 1, padA, padB);
  const out = Math.ceil((size + padA + padB - k) / stride) + 1;
  return (out - 1) * stride >= size + padA ? out - 1 : out;
}

/**
 * Visits every pooling window; `reduce` gets the in-bounds values and the window's size within the
 * padded input (the padding counted, a ceil-mode window's part past it not) so average variants can
 * choose their divisor.
 */
function pool2d(x: Data, xShape: number[], o: Pool2dOptions, reduce: (vals: number[], paddedSize: number) => number): Result {
  const [N, C, H, W] = xShape;
  const [kH, kW] = o.kernel;
  const [sh, sw] = o.stride ?? o.kernel;
  const [pt, pl, pb, pr] = o.pads ?? [0, 0, 0, 0];
  const oH = poolSize(H, kH, sh, pt, pb, o.ceil ?? false), oW = poolSize(W, kW, sw, pl, pr, o.ceil ?? false);
  const out = new Float64Array(N * C * oH * oW);
  for (let nc = 0; nc < N * C; nc++)
    for (let i = 0; i < oH; i++)
      for (let j = 0; j < oW; j++) {
        const vals: number[] = [];
        for (let ki = 0; ki < kH; ki++)
          for (let kj = 0; kj < kW; kj++) {
            const y = i * sh - pt + ki, xx = j * sw - pl + kj;
            if (y >= 0 && y < H && xx >= 0 && xx < W) vals.push(x[(nc * H + y) * W + xx]);
          }
        const rows = Math.min(i * sh - pt + kH, H + pb) - (i * sh - pt), cols = Math.min(j * sw - pl + kW, W + pr) - (j * sw - pl);
        out[(nc * oH + i) * oW + j] = reduce(vals, rows * cols);
      }
  return { data: out, shape: [N, C, oH, oW] };
}

const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);

/** Padding never wins a max (it is -inf, as in PyTorch and ONNX). */
export const maxPool2d = (x: Data, xShape: number[], o: Pool2dOptions): Result =>
  pool2d(x, xShape, o, (v) => Math.max(...v));

/** countIncludePad defaults to true, PyTorch's default (ONNX's attribute default is 0). */
export const avgPool2d = (x: Data, xShape: number[], o: Pool2dOptions & { countIncludePad?: boolean }): Result =>
  pool2d(x, xShape, o, (v, padded) => sum(v) / ((o.countIncludePad ?? true) ? padded : v.length));

export const sumPool2d = (x: Data, xShape: number[], o: Pool2dOptions): Result => pool2d(x, xShape, o, sum);

export const globalAvgPool = (x: Data, s: number[]): Result => avgPool2d(x, s, { kernel: [s[2], s[3]] });
export const globalMaxPool = (x: Data, s: number[]): Result => maxPool2d(x, s, { kernel: [s[2], s[3]] });

/** Per-channel normalisation with running statistics. */
export function batchNormInference(x: Data, shape: number[], gamma: Data, beta: Data, mean: Data, variance: Data, eps = 1e-5): Result {
  const [N, C] = shape;
  const hw = shape.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float64Array(N * C * hw);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const scale = gamma[c] / Math.sqrt(variance[c] + eps);
      for (let k = 0; k < hw; k++) {
        const idx = (n * C + c) * hw + k;
        out[idx] = (x[idx] - mean[c]) * scale + beta[c];
      }
    }
  return { data: out, shape: [...shape] };
}

/** ShuffleNet's channel shuffle of NCHW: output channel j·G + i is input channel i·(C/G) + j. */
export function channelShuffle(x: Data, shape: number[], groups: number): Result {
  const [N, C] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const per = C / groups;
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < groups; i++)
      for (let j = 0; j < per; j++)
        for (let k = 0; k < inner; k++) out[(n * C + j * groups + i) * inner + k] = x[(n * C + i * per + j) * inner + k];
  return { data: out, shape: [...shape] };
}

/** x · s[c] per channel (axis 1 of NCHW or NC). */
export function channelScale(x: Data, shape: number[], s: Data): Result {
  const C = shape[1];
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  return map(x, shape, (v, i) => v * s[Math.floor(i / inner) % C]);
}

/** Layer normalisation over axis 1 (the channels at each position, or a vector's features), then γ·x̂ + β per channel. */
export function layerNorm(x: Data, shape: number[], gamma: Data, beta: Data, eps = 1e-5): Result {
  const [N, C] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < inner; k++) {
      const idx = (c: number) => (n * C + c) * inner + k;
      let mean = 0;
      for (let c = 0; c < C; c++) mean += x[idx(c)] / C;
      let variance = 0;
      for (let c = 0; c < C; c++) variance += (x[idx(c)] - mean) ** 2 / C;
      for (let c = 0; c < C; c++) out[idx(c)] = ((x[idx(c)] - mean) / Math.sqrt(variance + eps)) * gamma[c] + beta[c];
    }
  return { data: out, shape: [...shape] };
}

/** y = x W^T + b with W in PyTorch's [out, in] layout. */
export function dense(x: Data, xShape: number[], w: Data, wShape: number[], b: Data | null): Result {
  const [N, K] = xShape;
  const [M, K2] = wShape;
  if (K !== K2) throw new Error('dense: inner dimensions differ');
  const out = new Float64Array(N * M);
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      let s = b ? b[m] : 0;
      for (let k = 0; k < K; k++) s += x[n * K + k] * w[m * K + k];
      out[n * M + m] = s;
    }
  return { data: out, shape: [N, M] };
}

/** Softmax over the last axis, shifted by the row max for stability. */
export function softmax(x: Data, shape: number[]): Result {
  const D = shape[shape.length - 1];
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let max = -Infinity;
    for (let k = 0; k < D; k++) max = Math.max(max, x[r * D + k]);
    let total = 0;
    for (let k = 0; k < D; k++) total += out[r * D + k] = Math.exp(x[r * D + k] - max);
    for (let k = 0; k < D; k++) out[r * D + k] /= total;
  }
  return { data: out, shape: [...shape] };
}

/** Softmax over axis 1 (the channels) of [N, C, ...]. */
export function softmaxChannels(x: Data, shape: number[]): Result {
  const [N, C] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < inner; k++) {
      const at = (c: number) => (n * C + c) * inner + k;
      let max = -Infinity;
      for (let c = 0; c < C; c++) max = Math.max(max, x[at(c)]);
      let total = 0;
      for (let c = 0; c < C; c++) total += out[at(c)] = Math.exp(x[at(c)] - max);
      for (let c = 0; c < C; c++) out[at(c)] /= total;
    }
  return { data: out, shape: [...shape] };
}

/** Batch norm with the batch's statistics (training mode): the output, the per-channel mean and biased variance. */
export function batchNormTrain(x: Data, shape: number[], gamma: Data, beta: Data, eps: number): Result & { mean: Float64Array; variance: Float64Array; count: number } {
  const [N, C] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const count = N * inner;
  const mean = new Float64Array(C), variance = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let k = 0; k < inner; k++) s += x[(n * C + c) * inner + k];
    mean[c] = s / count;
    let v = 0;
    for (let n = 0; n < N; n++) for (let k = 0; k < inner; k++) v += (x[(n * C + c) * inner + k] - mean[c]) ** 2;
    variance[c] = v / count;
  }
  const y = batchNormInference(x, shape, gamma, beta, mean, variance, eps);
  return { ...y, mean, variance, count };
}

const map = (x: Data, shape: number[], f: (v: number, i: number) => number): Result =>
  ({ data: Float64Array.from(x, f), shape: [...shape] });

/**
 * erf from the series 2/√π · e^(-x²) · Σ (2x²)^n x / (1·3·…·(2n+1)). Its terms are all positive,
 * so unlike the Maclaurin series it loses no precision to cancellation; beyond |x| = 6,
 * 1 - erf(x) < 1e-17 and the answer is ±1 in double precision.
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  let term = a, total = a;
  for (let n = 0; term > 1e-17 * total; n++) {
    term *= (2 * a * a) / (2 * n + 3);
    total += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * total;
}

export const sigmoidScalar = (v: number) => 1 / (1 + Math.exp(-v));

export const relu = (x: Data, s: number[]) => map(x, s, (v) => Math.max(0, v));
export const relu6 = (x: Data, s: number[]) => map(x, s, (v) => Math.min(Math.max(0, v), 6));
export const leakyRelu = (x: Data, s: number[], slope = 0.01) => map(x, s, (v) => (v >= 0 ? v : slope * v));
export const elu = (x: Data, s: number[], alpha = 1) => map(x, s, (v) => (v >= 0 ? v : alpha * (Math.exp(v) - 1)));
export const gelu = (x: Data, s: number[]) => map(x, s, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
export const sigmoid = (x: Data, s: number[]) => map(x, s, sigmoidScalar);
export const silu = (x: Data, s: number[]) => map(x, s, (v) => v * sigmoidScalar(v));
export const tanh = (x: Data, s: number[]) => map(x, s, Math.tanh);
export const hardswish = (x: Data, s: number[]) => map(x, s, (v) => (v * Math.min(Math.max(v + 3, 0), 6)) / 6);
export const hardsigmoid = (x: Data, s: number[]) => map(x, s, (v) => Math.min(Math.max(v + 3, 0), 6) / 6);
export const identity = (x: Data, s: number[]) => map(x, s, (v) => v);

/** PReLU with one slope per channel (axis 1 of NCHW or NC). */
export function prelu(x: Data, s: number[], slopes: Data): Result {
  const C = s[1];
  const inner = s.slice(2).reduce((a, b) => a * b, 1);
  return map(x, s, (v, i) => (v >= 0 ? v : slopes[Math.floor(i / inner) % C] * v));
}

/**
 * Resampling along H and W as PyTorch's F.interpolate: `sources(dst)` gives, per axis, the input
 * indices and weights output index dst reads.
 */
function resample2d(x: Data, xShape: number[], out: [number, number], sources: (dst: number, inSize: number, outSize: number) => [number, number][]): Result {
  const [N, C, H, W] = xShape;
  const [oH, oW] = out;
  const y = new Float64Array(N * C * oH * oW);
  for (let nc = 0; nc < N * C; nc++)
    for (let i = 0; i < oH; i++)
      for (let j = 0; j < oW; j++) {
        let s = 0;
        for (const [r, wr] of sources(i, H, oH)) for (const [c, wc] of sources(j, W, oW)) s += wr * wc * x[(nc * H + r) * W + c];
        y[(nc * oH + i) * oW + j] = s;
      }
  return { data: y, shape: [N, C, oH, oW] };
}

/** Nearest: PyTorch's src = floor(dst · (in/out)), computed in float32, clamped; equal sizes copy. */
export const upsampleNearest2d = (x: Data, xShape: number[], out: [number, number]): Result =>
  resample2d(x, xShape, out, (d, n, o) => [[n === o ? d : Math.min(Math.floor(Math.fround(d * Math.fround(n / o))), n - 1), 1]]);

/** Bilinear: source position (dst + ½)·in/out - ½ clamped at 0, or dst·(in-1)/(out-1) with alignCorners. */
export const upsampleBilinear2d = (x: Data, xShape: number[], out: [number, number], alignCorners = false): Result =>
  resample2d(x, xShape, out, (d, n, o) => {
    const src = alignCorners ? (o > 1 ? (d * (n - 1)) / (o - 1) : 0) : Math.max((d + 0.5) * (n / o) - 0.5, 0);
    const i0 = Math.floor(src), i1 = Math.min(i0 + 1, n - 1), t = src - i0;
    return [[i0, 1 - t], [i1, t]];
  });

/** PyTorch's PixelShuffle: output (c, h·r + i, w·r + j) is input channel c·r² + i·r + j at (h, w). */
export function pixelShuffle(x: Data, xShape: number[], r: number): Result {
  const [N, C, H, W] = xShape;
  const oC = C / (r * r), oH = H * r, oW = W * r;
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < oC; c++)
      for (let p = 0; p < oH; p++)
        for (let q = 0; q < oW; q++) {
          const from = c * r * r + (p % r) * r + (q % r);
          out[((n * oC + c) * oH + p) * oW + q] = x[((n * C + from) * H + Math.floor(p / r)) * W + Math.floor(q / r)];
        }
  return { data: out, shape: [N, oC, oH, oW] };
}

/** PyTorch's AdaptiveAvgPool2d: output (i, j) averages rows floor(i·H/oH) .. ceil((i+1)·H/oH) - 1, and so for columns. */
export function adaptiveAvgPool2d(x: Data, xShape: number[], out: [number, number]): Result {
  const [N, C, H, W] = xShape;
  const [oH, oW] = out;
  const y = new Float64Array(N * C * oH * oW);
  for (let nc = 0; nc < N * C; nc++)
    for (let i = 0; i < oH; i++)
      for (let j = 0; j < oW; j++) {
        const r0 = Math.floor((i * H) / oH), r1 = Math.ceil(((i + 1) * H) / oH);
        const c0 = Math.floor((j * W) / oW), c1 = Math.ceil(((j + 1) * W) / oW);
        let s = 0;
        for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) s += x[(nc * H + r) * W + c];
        y[(nc * oH + i) * oW + j] = s / ((r1 - r0) * (c1 - c0));
      }
  return { data: y, shape: [N, C, oH, oW] };
}
