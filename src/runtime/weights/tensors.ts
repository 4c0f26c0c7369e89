/**
 * What the weight-file readers produce: float32 tensors under the file's own names, grouped into
 * the file's layers (a PyTorch module, or an ONNX op with its weights), in the file's order.
 */

/** A tensor of a weight file, converted to float32, under the name the file gives it. */
export interface FileTensor {
  name: string;
  dims: number[];
  data: Float32Array;
}

/**
 * One layer of a file: its tensors by role. The roles are PyTorch's local names (weight, bias,
 * running_mean, running_var), which cnnc's parameters use too, so a role is a ParamSpec name.
 */
export interface FileLayer {
  /** How messages name it: "safetensors", "ONNX Conv". */
  origin: string;
  /** The module (`layer1.0.conv1`) or the ONNX node's name. */
  label: string;
  roles: Map<string, FileTensor>;
  /** Roles stored in another layout and converted (ONNX MatMul's [in, out] weight): role -> what was done. */
  converted?: Map<string, string>;
  /** An ONNX Conv's geometry, checked against the model's. */
  window?: { strides: number[]; dilations: number[]; pads: number[] };
  /** An ONNX BatchNormalization's epsilon. */
  eps?: number;
}

/**
 * The file's layers as a tree of modules: a leaf holds a layer; an inner node's children are in
 * the file's order. `fixed`: the children must stay in that order (numbered ones, as nn.Sequential
 * runs them, or an ONNX graph's ops); otherwise (named submodules of a state dict written sorted by
 * name) the matcher may take them in another order where the shapes require it.
 */
export interface FileTree {
  name: string;
  layer?: FileLayer;
  children: FileTree[];
  fixed: boolean;
}

export type FloatType = 'F32' | 'F16' | 'BF16' | 'F64';
export const FLOAT_BYTES: Readonly<Record<FloatType, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** IEEE half precision bits to a number (exact: every half is a float32). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Little-endian values of `type` to float32 (a copy, so the result is aligned and owns its buffer). */
export function toFloat32(bytes: Uint8Array, type: FloatType): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / FLOAT_BYTES[type]);
  switch (type) {
    case 'F32': for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true); break;
    case 'F64': for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true); break;
    case 'F16': for (let i = 0; i < out.length; i++) out[i] = halfToFloat(view.getUint16(2 * i, true)); break;
    // bfloat16 is the top half of a float32.
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
  }
  return out;
}

/** The note a reader adds when it converted tensors: "12 tensors converted from F16 to float32". */
export function conversionNotes(counts: ReadonlyMap<string, number>): string[] {
  return [...counts].map(([type, n]) => `${n} ${n === 1 ? 'tensor' : 'tensors'} converted from ${type} to float32${type === 'F64' ? ' (rounded)' : ''}`);
}

export const sameDims = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Shapes that differ only in sizes of 1 hold their values in the same order: a Linear's [out, in]
 * applied at every position is a 1x1 convolution's [out, in, 1, 1]; a [C, 1, 1] scale is a [C] one.
 */
export const sameLayout = (a: readonly number[], b: readonly number[]) => sameDims(a.filter((d) => d !== 1), b.filter((d) => d !== 1));
