/**
 * Weights from an ONNX model, whoever wrote it: its float initializers by name, and its layers,
 * read from the graph's nodes, so that anonymous initializers (`onnx::Conv_193`, what
 * torch.onnx.export names batch-norm-folded weights) still have a place: which op each one feeds,
 * in which role, in the graph's order (the order torch.onnx.export traced the forward pass).
 */
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import { UserError } from '../../errors.ts';
import { METADATA_KEYS } from '../../compiler/emit/inference.ts';
import { decodeModel, toNum } from '../../compiler/onnx/builder.ts';
import { conversionNotes, toFloat32, type FileLayer, type FileTensor, type FloatType } from './tensors.ts';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;
const FLOAT_TYPES: ReadonlyMap<number, FloatType> = new Map([[T.FLOAT, 'F32'], [T.FLOAT16, 'F16'], [T.BFLOAT16, 'BF16'], [T.DOUBLE, 'F64']]);

export interface OnnxWeights {
  /** Float initializers (and Identity copies of them, under the copy's name), in the file's order. */
  tensors: Map<string, FileTensor>;
  /** The ops with weights, in the graph's order. */
  layers: FileLayer[];
  /** The model name in cnnc's metadata, when cnnc compiled the file (its names are then cnnc's). */
  cnncModel?: string;
  notes: string[];
}

export function readOnnxWeights(bytes: Uint8Array, file: string): OnnxWeights {
  const model = decodeModel(bytes, file);
  const converted = new Map<string, number>();
  const tensors = new Map<string, FileTensor>();
  for (const t of model.graph?.initializer ?? []) {
    const type = FLOAT_TYPES.get(t.dataType ?? 0);
    if (!type) continue;
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw new UserError(`initializer ${t.name} uses external data, which is not supported`, file);
    if (type !== 'F32') converted.set(type, (converted.get(type) ?? 0) + 1);
    tensors.set(t.name ?? '', { name: t.name ?? '', dims: (t.dims ?? []).map(toNum), data: floatData(t, type) });
  }
  const nodes = model.graph?.node ?? [];
  // torch.onnx.export stores equal initializers once and copies them with Identity ops.
  for (const n of nodes) {
    const from = n.opType === 'Identity' ? tensors.get(n.input?.[0] ?? '') : undefined;
    if (from && n.output?.[0]) tensors.set(n.output[0], { ...from, name: n.output[0] });
  }
  const graph = new GraphView(nodes, tensors);
  const layers: FileLayer[] = [];
  nodes.forEach((n, i) => {
    const layer = OP_LAYERS[n.opType ?? '']?.(n, graph);
    if (layer) layers.push({ ...layer, label: n.name || `${n.opType} #${i + 1}` });
  });
  const cnncModel = model.metadataProps?.find((p) => p.key === METADATA_KEYS.model)?.value ?? undefined;
  return { tensors, layers, cnncModel, notes: conversionNotes(converted) };
}

function floatData(t: O.ITensorProto, type: FloatType): Float32Array {
  if (t.rawData && t.rawData.length > 0) return toFloat32(new Uint8Array(t.rawData), type);
  if (type === 'F32') return Float32Array.from(t.floatData ?? []);
  if (type === 'F64') return Float32Array.from(t.doubleData ?? []);
  // FLOAT16 and BFLOAT16 without raw data: one 16-bit pattern per int32_data entry.
  const bits = Uint16Array.from(t.int32Data ?? []);
  return toFloat32(new Uint8Array(bits.buffer), type);
}

/** The graph's stored tensors by value name, and who consumes each value. */
class GraphView {
  private readonly consumers = new Map<string, O.INodeProto[]>();

  constructor(nodes: readonly O.INodeProto[], private readonly tensors: ReadonlyMap<string, FileTensor>) {
    for (const n of nodes) for (const i of n.input ?? []) this.consumers.set(i, [...(this.consumers.get(i) ?? []), n]);
  }

  /** The stored tensor feeding input `i` of `n`, if it is one. */
  input(n: O.INodeProto, i: number): FileTensor | undefined {
    const name = n.input?.[i];
    return name ? this.tensors.get(name) : undefined;
  }

  consumersOf(value: string): O.INodeProto[] {
    return this.consumers.get(value) ?? [];
  }
}

type LayerOf = (n: O.INodeProto, g: GraphView) => Omit<FileLayer, 'label'> | undefined;

function attr(n: O.INodeProto, name: string): O.IAttributeProto | undefined {
  return n.attribute?.find((a) => a.name === name);
}
const intAttr = (n: O.INodeProto, name: string, def: number) => { const a = attr(n, name); return a?.i !== undefined && a.i !== null ? toNum(a.i) : def; };
const floatAttr = (n: O.INodeProto, name: string, def: number) => attr(n, name)?.f ?? def;
const intsAttr = (n: O.INodeProto, name: string) => attr(n, name)?.ints?.map(toNum);

function roles(entries: [string, FileTensor | undefined][]): Map<string, FileTensor> {
  return new Map(entries.filter((e): e is [string, FileTensor] => e[1] !== undefined));
}

/** A [rows, cols] tensor as [cols, rows]. */
function transposed(t: FileTensor): FileTensor {
  const [r, c] = t.dims;
  const data = new Float32Array(t.data.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data[j * r + i] = t.data[i * c + j];
  return { name: t.name, dims: [c, r], data };
}

/** A bias stored as [1, out] (Gemm's C may be any broadcastable shape) as [out]. */
const flatBias = (t: FileTensor | undefined) => (t && t.dims.length === 2 && t.dims[0] === 1 ? { ...t, dims: [t.dims[1]] } : t);

/** PRelu's slope, stored as [C, 1, 1] to broadcast over [N, C, H, W], as PyTorch's [C] (or [1]). */
function slope(t: FileTensor): FileTensor {
  const dims = t.dims.filter((d) => d !== 1);
  return { ...t, dims: dims.length ? dims : [1] };
}

/** Ops that carry a layer's parameters, and how their inputs map to roles. */
const OP_LAYERS: Record<string, LayerOf> = {
  Conv(n, g) {
    const weight = g.input(n, 1);
    if (!weight || weight.dims.length < 3) return undefined;
    const k = weight.dims.length - 2;
    const autoPad = attr(n, 'auto_pad')?.s;
    const explicit = !autoPad || new TextDecoder().decode(autoPad) === 'NOTSET';
    return {
      origin: 'ONNX Conv', roles: roles([['weight', weight], ['bias', g.input(n, 2)]]),
      window: explicit ? {
        strides: intsAttr(n, 'strides') ?? Array(k).fill(1),
        dilations: intsAttr(n, 'dilations') ?? Array(k).fill(1),
        pads: intsAttr(n, 'pads') ?? Array(2 * k).fill(0),
      } : undefined,
    };
  },
  BatchNormalization(n, g) {
    const [weight, bias, mean, variance] = [1, 2, 3, 4].map((i) => g.input(n, i));
    if (!weight || !bias || !mean || !variance) return undefined;
    return {
      origin: 'ONNX BatchNormalization', eps: floatAttr(n, 'epsilon', 1e-5),
      roles: roles([['weight', weight], ['bias', bias], ['running_mean', mean], ['running_var', variance]]),
    };
  },
  // y = x·Bᵀ + C with transB (PyTorch's Linear: B is [out, in], as cnnc's dense keeps it).
  Gemm(n, g) {
    const b = g.input(n, 1);
    if (!b || b.dims.length !== 2 || intAttr(n, 'transA', 0) !== 0 || floatAttr(n, 'alpha', 1) !== 1 || floatAttr(n, 'beta', 1) !== 1) return undefined;
    const transB = intAttr(n, 'transB', 0) === 1;
    return {
      origin: 'ONNX Gemm', roles: roles([['weight', transB ? b : transposed(b)], ['bias', flatBias(g.input(n, 2))]]),
      converted: transB ? undefined : new Map([['weight', 'transposed from Gemm\'s [in, out]']]),
    };
  },
  // PyTorch's Linear on inputs of more than two axes: MatMul by the weight stored as [in, out], then Add.
  MatMul(n, g) {
    const b = g.input(n, 1);
    if (!b || b.dims.length !== 2) return undefined;
    const add = g.consumersOf(n.output?.[0] ?? '').find((c) => c.opType === 'Add');
    const bias = add && [0, 1].map((i) => g.input(add, i)).find((t) => t && t.dims.length === 1 && t.dims[0] === b.dims[1]);
    return {
      origin: 'ONNX MatMul', roles: roles([['weight', transposed(b)], ['bias', bias]]),
      converted: new Map([['weight', 'transposed from MatMul\'s [in, out]']]),
    };
  },
  PRelu(n, g) {
    const s = g.input(n, 1);
    return s ? { origin: 'ONNX PRelu', roles: roles([['weight', slope(s)]]) } : undefined;
  },
};
