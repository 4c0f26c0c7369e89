/**
 * A Triton Inference Server model for a checked model: its configuration (`config.pbtxt`, the
 * protobuf text format of Triton's ModelConfig) and its labels file, for the inference graph
 * served by Triton's ONNX Runtime backend. The graph's batch dimension is symbolic, so Triton
 * batches along it and the configured dims leave it out. Pure: the CLI writes the files.
 */
import path from 'node:path';
import { UserError } from '../../errors.ts';
import { formatShape } from '../layers/types.ts';
import { finalLayer, type CheckedModel } from '../model.ts';
import type { SourceInput } from '../source.ts';
import { assertEmittable, INPUT_NAME, modelMetadata, OUTPUT_NAME, PRODUCER } from './inference.ts';

/** Where Triton places the model's instances: KIND_GPU, KIND_CPU, or KIND_AUTO (GPU when there is one). */
export type InstanceKind = 'gpu' | 'cpu' | 'auto';
export const INSTANCE_KINDS: readonly InstanceKind[] = ['gpu', 'cpu', 'auto'];
export const DEFAULT_MAX_BATCH = 32;
export const LABELS_FILE = 'labels.txt';
/** The version folder: Triton serves numbered folders, and ignores names starting with 0. */
export const VERSION = '1';
/** The ONNX Runtime backend's default model file name, so the config need not name it. */
export const MODEL_FILE = 'model.onnx';

export interface TritonOptions {
  maxBatch: number;
  kind: InstanceKind;
  /** The .cnn file (its base name goes into comments and parameters). */
  file?: string;
  source?: SourceInput;
}

export interface TritonModel {
  /** config.pbtxt's text. */
  config: string;
  /** labels.txt's text, one class name per output value; absent when none is written. */
  labels?: string;
  /** Why a model with class names gets no labels file, for the CLI to say. */
  note?: string;
}

export function tritonModel(model: CheckedModel, opts: TritonOptions): TritonModel {
  assertEmittable(model);
  const labels = labelsFor(model, opts.file);
  const file = opts.file === undefined ? undefined : path.basename(opts.file);
  const config = message(
    ...header(model, file, labels),
    ['name', model.name],
    ['backend', 'onnxruntime'],
    ['max_batch_size', opts.maxBatch],
    ['input', [inputMessage(model.input)]],
    ['output', [outputMessage(model.output, labels.names !== undefined)]],
    { comment: 'Requests queued together run as one batch of up to max_batch_size. A delay (microseconds) waits for fuller batches, trading latency for throughput.' },
    ['dynamic_batching', message(['max_queue_delay_microseconds', 0])],
    ['instance_group', [message(['count', 1], ['kind', enumValue(`KIND_${opts.kind.toUpperCase()}`)])]],
    { comment: 'The same cnnc.* facts as the ONNX file\'s metadata; clients read them from the config endpoint.' },
    ...Object.entries(modelMetadata(model, opts.source, file)).map(([key, value]): Entry =>
      ['parameters', message(['key', key], ['value', message(['string_value', value])])]),
  );
  return { config: formatMessage(config, ''), labels: labels.names?.map((n) => `${n}\n`).join(''), note: labels.note };
}

/** One class name per output value, or none: without classes Triton's classification reports indices. */
function labelsFor(model: CheckedModel & { output: number[] }, file: string | undefined): { names?: string[]; note?: string } {
  const classes = model.preprocess.classes;
  if (!classes) return {};
  const [values] = model.output;
  if (model.output.length === 1 && values === classes.length) return { names: classes };
  // A single output scores class 1 (as predict reads it); Triton would name its one value class 0.
  if (model.output.length === 1 && values === 1 && classes.length === 2) {
    return { note: `the single output scores class "${classes[1]}" against "${classes[0]}", so no ${LABELS_FILE} is written (Triton's classification would name the one value "${classes[0]}")` };
  }
  const output = model.output.length === 1 ? `has ${values} values` : `is ${formatShape(model.output)}`;
  throw new UserError(`model ${model.name} names ${classes.length} classes but its output ${output}; ${LABELS_FILE} would label the outputs wrongly (make classes= match the last layer)`, file);
}

/** Comment lines a Triton user needs: how to preprocess the input, what the output holds. */
function header(model: CheckedModel & { input: number[]; output: number[] }, file: string | undefined, labels: { names?: string[]; note?: string }): Entry[] {
  const { mean, std } = model.preprocess;
  const image = model.input.length === 3;
  const lines = [
    `Triton model configuration for ${model.name}, written by ${PRODUCER.name} ${PRODUCER.version}${file ? ` from ${file}` : ''}; the model is ${VERSION}/${MODEL_FILE}.`,
    `cnnc compile --triton replaces this folder only while its files are as listed above (docs/triton.md).`,
    `Input "${INPUT_NAME}": float32 [batch, ${model.input.join(', ')}]${image ? `, NCHW${CHANNEL_ORDER[model.input[0]] ?? ''}` : ''}.`,
    image
      ? `Preprocess as cnnc predict does: pixels scaled to [0, 1], then (x - mean) / std per channel, mean [${mean.join(', ')}], std [${std.join(', ')}].`
      : `Preprocess each value: (x - mean) / std, mean ${mean[0]}, std ${std[0]}.`,
    `Output "${OUTPUT_NAME}": float32 [batch, ${model.output.join(', ')}], ${outputMeaning(model)}${labels.names ? `; class names in ${LABELS_FILE}, in order` : ''}.`,
    ...(labels.note ? [`Classes: ${model.preprocess.classes!.join(', ')}; ${labels.note}.`] : []),
  ];
  return lines.map((comment) => ({ comment }));
}

/** How cnnc predict reads images into channels (src/runtime/images.ts). */
const CHANNEL_ORDER: Record<number, string> = { 1: ', one grey channel', 3: ', channels in RGB order' };

function outputMeaning(model: CheckedModel & { output: number[] }): string {
  const ends = finalLayer(model.root)?.layer.probabilities;
  if (ends === 'softmax') return 'probabilities (the model ends in softmax)';
  if (ends === 'sigmoid') return 'probabilities, each its own (the model ends in sigmoid)';
  return model.output.length === 1 && model.output[0] === 1 ? 'a logit (sigmoid gives the probability)' : 'logits (softmax gives probabilities)';
}

function inputMessage(dims: number[]): Message {
  // FORMAT_NCHW tells image clients the layout; Triton accepts it only for three dims.
  const format: Entry[] = dims.length === 3 ? [['format', enumValue('FORMAT_NCHW')]] : [];
  return message(['name', INPUT_NAME], ['data_type', enumValue('TYPE_FP32')], ...format, ['dims', dims]);
}

function outputMessage(dims: number[], labelled: boolean): Message {
  const labels: Entry[] = labelled ? [['label_filename', LABELS_FILE]] : [];
  return message(['name', OUTPUT_NAME], ['data_type', enumValue('TYPE_FP32')], ['dims', dims], ...labels);
}

// --- protobuf text format -------------------------------------------------------------------

interface Enum { enum: string }
type Scalar = string | number | Enum;
interface Message { entries: Entry[] }
/** A field's value: a scalar, a list of scalars, a message, or a list of messages. */
type Value = Scalar | Scalar[] | Message | Message[];
type Entry = [field: string, value: Value] | { comment: string };

const enumValue = (name: string): Enum => ({ enum: name });
const message = (...entries: Entry[]): Message => ({ entries });
const isMessage = (v: unknown): v is Message => typeof v === 'object' && v !== null && !Array.isArray(v) && 'entries' in v;

function formatMessage(m: Message, indent: string): string {
  return m.entries.map((entry) => formatEntry(entry, indent)).join('');
}

function formatEntry(entry: Entry, indent: string): string {
  if (!Array.isArray(entry)) return `${indent}# ${entry.comment}\n`;
  const [field, value] = entry;
  const inner = `${indent}  `;
  if (Array.isArray(value) && value.some(isMessage)) {
    const items = (value as Message[]).map((m) => `${inner}{\n${formatMessage(m, `${inner}  `)}${inner}}`);
    return `${indent}${field} [\n${items.join(',\n')}\n${indent}]\n`;
  }
  if (isMessage(value)) return `${indent}${field} {\n${formatMessage(value, inner)}${indent}}\n`;
  if (Array.isArray(value)) return `${indent}${field}: [ ${(value as Scalar[]).map(formatScalar).join(', ')} ]\n`;
  return `${indent}${field}: ${formatScalar(value)}\n`;
}

function formatScalar(v: Scalar): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'object') return v.enum;
  return quote(v);
}

/** A text-format string literal: backslash, quote and control characters escaped; UTF-8 kept. */
function quote(s: string): string {
  const escapes: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return `"${s.replace(/[\\"\x00-\x1f\x7f]/g, (c) => escapes[c] ?? `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`)}"`;
}
