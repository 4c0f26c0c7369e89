/**
 * The inference graph: one ONNX model (opset 17, IR 8) per checked model, with input `input`
 * [N, ...model.input], output `logits` [N, ...model.output], parameters as initializers named
 * after the source (`conv1.weight`), and metadata for `predict` (preprocessing, source hash).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { SourceInput } from '../source.ts';
import onnxProto from 'onnx-proto';
import { UserError } from '../../errors.ts';
import { hasErrors } from '../diagnostics.ts';
import { formatShape, type ParamSpec } from '../layers/types.ts';
import type { CheckedModel, LayerNode } from '../model.ts';
import { buildModel, GraphBuilder } from '../onnx/builder.ts';
import { LowerContext, type ParamBinding } from './context.ts';
import { initialValue, paramCount } from './init.ts';
import { lowerNode } from './lower.ts';

export const OPSET = 17;
export const IR_VERSION = 8;
export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'logits';
/** Protobuf messages are limited to 2 GiB; leave room for the graph itself. */
const MAX_PROTO_BYTES = 2 ** 31 - 64 * 2 ** 20;

/** metadata_props keys written into every model. */
export const METADATA_KEYS = {
  model: 'cnnc.model',
  sourceFile: 'cnnc.source_file',
  /** sha256 (hex) of the .cnn source text (with the files it imports: sourceHash). */
  sourceHash: 'cnnc.source_sha256',
  /** JSON {mean: number[], std: number[], classes?: string[]}: x' = (x - mean) / std per channel. */
  preprocess: 'cnnc.preprocess',
  /** JSON [C, H, W] or [L]: the per-sample input shape. */
  inputShape: 'cnnc.input_shape',
} as const;

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
export const PRODUCER = { name: 'cnnc', version: pkg.version };

export interface WeightTensor {
  dims: readonly number[];
  data: Float32Array;
}

/**
 * Parameter values by full name (`conv1.weight`). A bare Float32Array is checked by length only.
 * A function may return undefined for a parameter it does not have.
 */
export type WeightSource =
  | ReadonlyMap<string, Float32Array | WeightTensor>
  | ((name: string, spec: ParamSpec) => Float32Array | WeightTensor | undefined);

export interface EmitOptions {
  /** Source file (its base name goes into node names and metadata). */
  file?: string;
  /** The source (text, or the check's texts with its imports): its hash goes into metadata, node names get lines. */
  source?: SourceInput;
  /** Parameter values; every parameter must be there, with the model's shape. Default: initialised. */
  init?: WeightSource;
  /** Where `init` came from, for error messages (e.g. the --weights file). */
  initFrom?: string;
  /** With `init`, initialise parameters it lacks instead of failing (default false). */
  partial?: boolean;
  /** Seed for initial values (default 0). */
  seed?: number;
  /** Where parameters come from instead (tools and tests, e.g. initializers without values); default: init and seed as above. */
  params?: ParamBinding;
}

/**
 * sha256 (hex) of a source: of the text alone for a file without imports; with imports, of every
 * text in the order read, each after its length, so that a change in an imported file changes it.
 */
export function sourceHash(source: SourceInput): string {
  const hash = createHash('sha256');
  const texts = typeof source === 'string' ? [source] : source.sources.map((s) => s.text);
  if (texts.length === 1) return hash.update(texts[0], 'utf8').digest('hex');
  for (const text of texts) hash.update(`${Buffer.byteLength(text, 'utf8')}\0`).update(text, 'utf8');
  return hash.digest('hex');
}

/** Refuses a model the checker did not fully infer (errors, or no shapes). */
export function assertEmittable(model: CheckedModel): asserts model is CheckedModel & { input: number[]; output: number[] } {
  if (hasErrors(model.diagnostics) || !model.input || !model.output) {
    const first = model.diagnostics.find((d) => d.severity === 'error');
    throw new UserError(`model ${model.name} has errors and cannot be compiled${first ? `: ${first.message}` : ''}`);
  }
}

/** Initializers from a weight source or from PyTorch-style initialisation. */
export function initializerParams(opts: Pick<EmitOptions, 'init' | 'initFrom' | 'partial' | 'seed'>): ParamBinding {
  const seed = opts.seed ?? 0;
  const from = opts.initFrom ?? 'the weights';
  const lookup = (name: string, spec: ParamSpec) =>
    typeof opts.init === 'function' ? opts.init(name, spec) : opts.init?.get(name);
  return {
    bind(name, spec, node: LayerNode, ctx) {
      const count = paramCount(spec);
      const dims = [...spec.shape];
      let data: Float32Array;
      const given = opts.init ? lookup(name, spec) : undefined;
      if (given) {
        const t = given instanceof Float32Array ? { dims: undefined, data: given } : given;
        const mismatch = t.dims ? t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i]) : t.data.length !== count;
        if (mismatch) {
          const have = t.dims ? formatShape(t.dims) : `${t.data.length} values`;
          throw new UserError(`tensor ${name} has shape ${have} in ${from}, but layer ${node.path} (${node.text}) needs ${formatShape(dims)}`);
        }
        if (t.data.length !== count) throw new UserError(`tensor ${name} in ${from} has ${t.data.length} values for shape ${formatShape(dims)}`);
        data = t.data;
      } else if (opts.init && !opts.partial) {
        throw new UserError(`${from} has no tensor ${name} (layer ${node.path}, ${node.text}, needs ${formatShape(dims)})`);
      } else {
        data = initialValue(spec.init, count, seed, name);
      }
      return ctx.graph.initializer(ctx.reserve(name), data, dims);
    },
  };
}

/** Builds the graph of one model into `ctx`'s builder; returns the value computing the output. */
export function lowerModel(ctx: LowerContext, model: CheckedModel, input: string): string {
  return lowerNode(ctx, model.root, input);
}

/** Compiles one checked model to a serialized ONNX inference model. */
export function emitInference(model: CheckedModel, opts: EmitOptions = {}): Uint8Array {
  return compileInference(model, opts).bytes;
}

export interface CompiledInference {
  bytes: Uint8Array;
  /** Number of ONNX nodes. */
  ops: number;
  /** Number of parameter values (initializers from the model's parameters). */
  params: number;
  /** Recorded value_info: value name -> dims (batch symbolic), for each layer/combinator output. */
  valueInfo: Map<string, (number | string)[]>;
}

/** emitInference with counts and the recorded shapes (for the CLI summary and tests). */
export function compileInference(model: CheckedModel, opts: EmitOptions = {}): CompiledInference {
  assertEmittable(model);
  if (model.totals.paramBytes > MAX_PROTO_BYTES) {
    throw new UserError(`model ${model.name} has ${(model.totals.paramBytes / 2 ** 30).toFixed(2)} GiB of parameters; a single ONNX file holds less than 2 GiB (external data is not supported)`);
  }
  const file = opts.file ? path.basename(opts.file) : undefined;
  const graph = new GraphBuilder(model.name);
  const ctx = new LowerContext(graph, { mode: 'inference', params: opts.params ?? initializerParams(opts), file, source: opts.source });
  const input = graph.input(ctx.reserve(INPUT_NAME), ctx.dims(model.input));
  ctx.reserve(OUTPUT_NAME);
  const last = lowerModel(ctx, model, input);
  if (ctx.renameValue(last, OUTPUT_NAME)) {
    const i = graph.valueInfos.findIndex((v) => v.name === OUTPUT_NAME);
    if (i >= 0) graph.valueInfos.splice(i, 1);
  } else {
    graph.node('Identity', [last], {}, { outputs: [OUTPUT_NAME], name: `${OUTPUT_NAME} (output)` });
  }
  graph.output(OUTPUT_NAME, ctx.dims(model.output));
  const valueInfo = new Map(graph.valueInfos.map((v) => [v.name, (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)))]));
  let params = 0;
  for (const t of graph.initializers) if (ctx.boundParams.has(t.name)) params += t.dims.reduce((a, b) => a * Number(b), 1);
  const bytes = buildModel(graph, {
    opset: OPSET,
    irVersion: IR_VERSION,
    producerName: PRODUCER.name,
    producerVersion: PRODUCER.version,
    docString: `${model.name}: compiled by cnnc from ${file ?? 'a .cnn source'}`,
    metadata: modelMetadata(model, opts.source, file),
  });
  return { bytes, ops: graph.nodes.length, params, valueInfo };
}

export function modelMetadata(model: CheckedModel, source?: SourceInput, file?: string): Record<string, string> {
  const meta: Record<string, string> = { [METADATA_KEYS.model]: model.name };
  if (file) meta[METADATA_KEYS.sourceFile] = file;
  if (source !== undefined) meta[METADATA_KEYS.sourceHash] = sourceHash(source);
  meta[METADATA_KEYS.preprocess] = JSON.stringify(model.preprocess);
  if (model.input) meta[METADATA_KEYS.inputShape] = JSON.stringify(model.input);
  return meta;
}

/** The metadata_props of a serialized model (for `predict`: preprocessing, model name). */
export function readModelMetadata(bytes: Uint8Array, file?: string): Record<string, string> {
  let decoded;
  try {
    decoded = onnxProto.onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new UserError(`not a valid ONNX model (${(e as Error).message})`, file);
  }
  return Object.fromEntries((decoded.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
}
