/**
 * A small ONNX graph builder over onnx-proto. It knows nothing of the cnn language:
 * callers add inputs, initializers and nodes by name and get back a serialized ModelProto.
 */
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import { UserError } from '../../errors.ts';

const { onnx } = onnxProto;

export type Dim = number | string;
export type ElemType = 'float' | 'double' | 'int64' | 'int32' | 'uint8' | 'bool';
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
export type GraphProto = O.GraphProto;
export type TensorProto = O.TensorProto;

/** JS numbers do not tell 1 from 1.0, so float attributes are wrapped explicitly. */
export interface FloatAttr { float: number }
export interface FloatsAttr { floats: number[] }
export const float = (v: number): FloatAttr => ({ float: v });
export const floats = (v: number[]): FloatsAttr => ({ floats: v });

/** Plain numbers are INT/INTS; strings are STRING; tensors and graphs are TENSOR/GRAPH. */
export type AttrValue = number | number[] | string | FloatAttr | FloatsAttr | TensorProto | GraphProto;

export interface NodeOptions {
  name?: string;
  /** Output names, or how many fresh outputs to create (default 1). */
  outputs?: number | string[];
  domain?: string;
}

const ELEM: Record<ElemType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  double: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  bool: onnx.TensorProto.DataType.BOOL,
};

function elemTypeOf(data: TensorData): ElemType {
  if (data instanceof Float32Array) return 'float';
  if (data instanceof Float64Array) return 'double';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  return 'uint8';
}

/** Builds a TensorProto; raw_data is little-endian, which matches every platform onnxruntime-node ships for. */
export function tensor(data: TensorData, dims: number[], opts: { name?: string; elemType?: ElemType } = {}): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`tensor ${opts.name ?? ''}: ${data.length} values for dims [${dims}]`);
  return onnx.TensorProto.create({
    name: opts.name,
    dims,
    dataType: ELEM[opts.elemType ?? elemTypeOf(data)],
    rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  });
}

/** int64 data from plain numbers, for Reshape shapes, axes and the like. */
export const int64 = (values: readonly number[]): BigInt64Array => BigInt64Array.from(values, (v) => BigInt(v));

function typeProto(dims: Dim[] | undefined, elemType: ElemType): O.ITypeProto {
  const shape = dims && { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { tensorType: { elemType: ELEM[elemType], shape } };
}

function attribute(name: string, v: AttrValue): O.AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  const make = (fields: O.IAttributeProto) => onnx.AttributeProto.create({ name, ...fields });
  if (typeof v === 'number') return make({ type: T.INT, i: checkInt(name, v) });
  if (typeof v === 'string') return make({ type: T.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return make({ type: T.INTS, ints: v.map((x) => checkInt(name, x)) });
  if (v instanceof onnx.TensorProto) return make({ type: T.TENSOR, t: v });
  if (v instanceof onnx.GraphProto) return make({ type: T.GRAPH, g: v });
  if ('float' in v) return make({ type: T.FLOAT, f: v.float });
  if ('floats' in v) return make({ type: T.FLOATS, floats: v.floats });
  throw new Error(`attribute ${name}: unsupported value`);
}

/** A fractional number passed as an int attribute is a caller bug (it should have used float()). */
function checkInt(name: string, v: number): number {
  if (!Number.isInteger(v)) throw new Error(`attribute ${name}: ${v} is not an integer; wrap floats with float()`);
  return v;
}

export class GraphBuilder {
  readonly nodes: O.NodeProto[] = [];
  readonly inputs: O.ValueInfoProto[] = [];
  readonly outputs: O.ValueInfoProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly valueInfos: O.ValueInfoProto[] = [];
  /** Domains used by nodes, so buildModel can import their opsets. */
  readonly domains = new Set<string>();
  /** Subgraphs share this with their parent: ONNX wants names unique across nested scopes. */
  private readonly names: { used: Set<string>; counters: Map<string, number> };

  constructor(readonly name: string, parent?: GraphBuilder) {
    this.names = parent ? parent.names : { used: new Set(), counters: new Map() };
  }

  /** A child builder for Loop/If bodies, sharing the unique-name space. */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this);
  }

  /** A name not used so far anywhere in this graph or its parents/children. */
  fresh(prefix: string): string {
    let n = this.names.counters.get(prefix) ?? 0;
    let name: string;
    do name = `${prefix}_${n++}`; while (this.names.used.has(name));
    this.names.counters.set(prefix, n);
    this.names.used.add(name);
    return name;
  }

  /** Registers a caller-chosen name; reusing one would silently break SSA form. */
  private claim(name: string): string {
    if (this.names.used.has(name)) throw new Error(`duplicate ONNX value name: ${name}`);
    this.names.used.add(name);
    return name;
  }

  input(name: string, dims: Dim[] | undefined, elemType: ElemType = 'float'): string {
    this.inputs.push(onnx.ValueInfoProto.create({ name: this.claim(name), type: typeProto(dims, elemType) }));
    return name;
  }

  /** Declares an existing value as a graph output (its name is not claimed again). */
  output(name: string, dims: Dim[] | undefined, elemType: ElemType = 'float'): string {
    this.outputs.push(onnx.ValueInfoProto.create({ name, type: typeProto(dims, elemType) }));
    return name;
  }

  valueInfo(name: string, dims: Dim[] | undefined, elemType: ElemType = 'float'): void {
    this.valueInfos.push(onnx.ValueInfoProto.create({ name, type: typeProto(dims, elemType) }));
  }

  initializer(name: string, data: TensorData, dims: number[], elemType?: ElemType): string {
    this.initializers.push(tensor(data, dims, { name: this.claim(name), elemType }));
    return name;
  }

  /** A constant under a fresh name; dims default to a 1-D vector. */
  constant(data: TensorData, dims: number[] = [data.length], prefix = 'const'): string {
    const name = this.fresh(prefix); // already reserved, so not claimed again
    this.initializers.push(tensor(data, dims, { name }));
    return name;
  }

  /** Adds a node and returns its output names. */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}, opts: NodeOptions = {}): string[] {
    const outputs = Array.isArray(opts.outputs)
      ? opts.outputs.map((o) => (o === '' ? o : this.claim(o)))
      : Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(opType.toLowerCase()));
    const attribute_ = Object.entries(attrs).filter(([, v]) => v !== undefined).map(([k, v]) => attribute(k, v!));
    const domain = opts.domain ?? '';
    if (domain) this.domains.add(domain);
    this.nodes.push(onnx.NodeProto.create({
      opType, input: inputs, output: outputs, attribute: attribute_, domain,
      name: opts.name ?? this.fresh(`${opType}_node`),
    }));
    return outputs;
  }

  /** node() for the common single-output case. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}, opts: Omit<NodeOptions, 'outputs'> & { output?: string } = {}): string {
    return this.node(opType, inputs, attrs, { ...opts, outputs: opts.output ? [opts.output] : 1 })[0];
  }

  /** The GraphProto, usable as a model's graph or as a GRAPH attribute (Loop body). */
  toGraph(docString?: string): GraphProto {
    return onnx.GraphProto.create({
      name: this.name, node: this.nodes, input: this.inputs, output: this.outputs,
      initializer: this.initializers, valueInfo: this.valueInfos, docString,
    });
  }
}

export interface ModelOptions {
  opset?: number;
  irVersion?: number;
  producerName: string;
  producerVersion: string;
  metadata?: Record<string, string>;
  docString?: string;
  /** Opset versions for non-default domains used by nodes (default 1 each). */
  domainOpsets?: Record<string, number>;
}

/** Serializes a ModelProto. Defaults: opset 17 and IR version 8, the IR that introduced opset 17. */
export function buildModel(graph: GraphBuilder, opts: ModelOptions): Uint8Array {
  const opsetImport = [{ domain: '', version: opts.opset ?? 17 }];
  for (const domain of graph.domains) opsetImport.push({ domain, version: opts.domainOpsets?.[domain] ?? 1 });
  const model = onnx.ModelProto.create({
    irVersion: opts.irVersion ?? 8,
    opsetImport,
    producerName: opts.producerName,
    producerVersion: opts.producerVersion,
    docString: opts.docString,
    graph: graph.toGraph(),
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(model).finish();
}

/** protobufjs decodes int64 as Long when the `long` package is present, else as number. */
export const toNum = (v: number | { toNumber(): number }): number => (typeof v === 'number' ? v : v.toNumber());

/** A serialized model, or a UserError naming the file when the bytes are not one. */
export function decodeModel(bytes: Uint8Array, file?: string): O.ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new UserError(`not a valid ONNX model (${(e as Error).message})`, file);
  }
}

export interface FloatInitializer { dims: number[]; data: Float32Array }

/** The float initializers of a serialized model (e.g. pretrained weights); other types are skipped. */
export function readInitializers(bytes: Uint8Array, file?: string): Map<string, FloatInitializer> {
  const model = decodeModel(bytes, file);
  const out = new Map<string, FloatInitializer>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT) continue;
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      throw new UserError(`initializer ${t.name} uses external data, which is not supported`, file);
    }
    out.set(t.name ?? '', { dims: (t.dims ?? []).map(toNum), data: floatData(t) });
  }
  return out;
}

function floatData(t: O.ITensorProto): Float32Array {
  if (t.rawData && t.rawData.length > 0) {
    // Copy (not Buffer#slice, which is a view): rawData may be unaligned within the decode buffer.
    const raw = new Uint8Array(t.rawData);
    return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}
