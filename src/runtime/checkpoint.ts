/**
 * cnnc checkpoints: one self-describing, versioned file of named float32 tensors plus free-form
 * metadata, written atomically. Used by `cnnc train` (parameters, buffers, optimizer state) and
 * read by `cnnc compile --weights` (through src/runtime/weights/).
 *
 * Layout (format version 1), all integers little-endian:
 *
 *   offset 0   8 bytes   magic "CNNCKPT\0"
 *   offset 8   uint32    format version (1)
 *   offset 12  uint32    H: byte length of the JSON header
 *   offset 16  H bytes   JSON header, UTF-8 (below)
 *   ...        zero padding up to the next multiple of 64: the data section starts there
 *   data       each tensor's raw little-endian float32 values, each starting at a multiple of 64
 *              bytes from the data section start, zero padding between tensors
 *
 * The header:
 *   {
 *     "format": "cnnc-checkpoint", "version": 1,
 *     "model": "ResNet18",                 // the model's name in the .cnn source
 *     "sourceHash": "…",                   // optional: sha256 (hex) of the .cnn source text
 *     "meta": { … },                        // free-form: epoch, step, optimizer settings, …
 *     "dataBytes": 123456,                 // length of the data section (padding included)
 *     "dataSha256": "…",                   // sha256 (hex) of the data section
 *     "tensors": [{ "name": "conv1.weight", "dims": [32, 3, 3, 3], "dtype": "float32",
 *                   "offset": 0, "length": 3456 }, …]   // offset and length in bytes, offset
 *   }                                                      // relative to the data section start
 *
 * Tensor names follow the source: `conv1.weight`, `vgg1.conv2.bias`, `bn1.running_mean`
 * (what the inference emitter names its initializers). Optimizer state uses its own prefix
 * (e.g. `optim.conv1.weight.m`), which `--weights` ignores.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import { writeFileAtomic, type WriteFs } from './files.ts';

export const CHECKPOINT_MAGIC = 'CNNCKPT\0';
export const CHECKPOINT_FORMAT = 'cnnc-checkpoint';
export const CHECKPOINT_VERSION = 1;
const ALIGN = 64;
const PREAMBLE = 16;
const MAX_HEADER = 256 * 1024 * 1024;

export interface CheckpointTensor {
  dims: number[];
  data: Float32Array;
}

export interface CheckpointInput {
  model: string;
  sourceHash?: string;
  meta?: Record<string, unknown>;
  tensors: ReadonlyMap<string, CheckpointTensor>;
}

export interface Checkpoint {
  model: string;
  sourceHash?: string;
  meta: Record<string, unknown>;
  version: number;
  /** In the file's order (the order they were given to saveCheckpoint). */
  tensors: Map<string, CheckpointTensor>;
}

interface TensorEntry {
  name: string;
  dims: number[];
  dtype: 'float32';
  offset: number;
  length: number;
}

interface Header {
  format: string;
  version: number;
  model: string;
  sourceHash?: string;
  meta: Record<string, unknown>;
  dataBytes: number;
  dataSha256: string;
  tensors: TensorEntry[];
}

const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian bytes of a float32 array (a view on little-endian machines). */
function leBytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  data.forEach((v, i) => view.setFloat32(4 * i, v, true));
  return out;
}

function fromLeBytes(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  }
  return out;
}

/** The whole file as a list of chunks (no copy of tensor data on little-endian machines). */
export function encodeCheckpoint(input: CheckpointInput): Uint8Array[] {
  const entries: TensorEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of input.tensors) {
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (!t.dims.every((d) => Number.isInteger(d) && d >= 0) || count !== t.data.length) {
      throw new Error(`checkpoint tensor ${name}: ${t.data.length} values for dims [${t.dims}]`);
    }
    const bytes = leBytes(t.data);
    entries.push({ name, dims: [...t.dims], dtype: 'float32', offset, length: bytes.byteLength });
    chunks.push(bytes);
    const padded = align(bytes.byteLength);
    if (padded > bytes.byteLength) chunks.push(new Uint8Array(padded - bytes.byteLength));
    offset += padded;
  }
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  const header: Header = {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, model: input.model,
    ...(input.sourceHash ? { sourceHash: input.sourceHash } : {}),
    meta: input.meta ?? {}, dataBytes: offset, dataSha256: hash.digest('hex'), tensors: entries,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const preamble = new Uint8Array(align(PREAMBLE + json.byteLength));
  preamble.set(new TextEncoder().encode(CHECKPOINT_MAGIC), 0);
  const view = new DataView(preamble.buffer);
  view.setUint32(8, CHECKPOINT_VERSION, true);
  view.setUint32(12, json.byteLength, true);
  preamble.set(json, PREAMBLE);
  return [preamble, ...chunks];
}

/**
 * Writes a checkpoint atomically: to `${path}.tmp-<pid>` first, every byte checked and fsync'd, then
 * renamed over `path`, so a crash or a full disk leaves either the old file or the new one, never a
 * partial file (see files.ts).
 */
export async function saveCheckpoint(file: string, input: CheckpointInput, fs?: WriteFs): Promise<void> {
  writeFileAtomic(file, encodeCheckpoint(input), fs);
}

export async function loadCheckpoint(file: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new UserError(`cannot read the checkpoint (${(e as NodeJS.ErrnoException).code ?? String(e)})`, file);
  }
  return decodeCheckpoint(bytes, file);
}

export function loadCheckpointSync(file: string): Checkpoint {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new UserError(`cannot read the checkpoint (${(e as NodeJS.ErrnoException).code ?? String(e)})`, file);
  }
  return decodeCheckpoint(bytes, file);
}

export function isCheckpoint(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 8 && new TextDecoder().decode(bytes.subarray(0, 8)) === CHECKPOINT_MAGIC;
}

/** Parses a checkpoint; every problem is a UserError naming `file`. */
export function decodeCheckpoint(bytes: Uint8Array, file = '<checkpoint>'): Checkpoint {
  const fail = (why: string): never => { throw new UserError(`not a valid cnnc checkpoint: ${why}`, file); };
  if (!isCheckpoint(bytes)) {
    fail(bytes.byteLength < 8 ? `only ${bytes.byteLength} bytes long` : 'it does not start with the CNNCKPT signature (is it a cnnc checkpoint?)');
  }
  if (bytes.byteLength < PREAMBLE) fail('truncated in its preamble');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version > CHECKPOINT_VERSION) {
    throw new UserError(`checkpoint format version ${version} was written by a newer cnnc; this cnnc reads version ${CHECKPOINT_VERSION} (upgrade cnnc)`, file);
  }
  if (version < 1) fail(`unknown format version ${version}`);
  const headerLength = view.getUint32(12, true);
  if (headerLength > MAX_HEADER) fail(`header length ${headerLength} is implausible`);
  if (PREAMBLE + headerLength > bytes.byteLength) fail(`truncated: the header needs ${PREAMBLE + headerLength} bytes, the file has ${bytes.byteLength}`);
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREAMBLE, PREAMBLE + headerLength))) as Header;
  } catch (e) {
    return fail(`its header is not valid JSON (${(e as Error).message})`);
  }
  if (header?.format !== CHECKPOINT_FORMAT) fail(`its header names format ${JSON.stringify(header?.format)}`);
  if (!Array.isArray(header.tensors) || typeof header.model !== 'string') fail('its header lacks the model name or the tensor list');
  const dataStart = align(PREAMBLE + headerLength);
  const dataBytes = Number(header.dataBytes);
  if (!Number.isSafeInteger(dataBytes) || dataBytes < 0) fail('its header has no valid data length');
  if (dataStart + dataBytes > bytes.byteLength) {
    fail(`truncated: the data needs ${dataStart + dataBytes} bytes, the file has ${bytes.byteLength}`);
  }
  const data = bytes.subarray(dataStart, dataStart + dataBytes);
  if (typeof header.dataSha256 === 'string' && createHash('sha256').update(data).digest('hex') !== header.dataSha256) {
    fail('its data does not match the checksum in its header (the file is corrupt)');
  }
  const tensors = new Map<string, CheckpointTensor>();
  for (const t of header.tensors) {
    const where = `tensor ${JSON.stringify(t?.name)}`;
    if (typeof t?.name !== 'string' || !Array.isArray(t.dims) || !t.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`${where} has no valid name or dims`);
    if (t.dtype !== 'float32') fail(`${where} has dtype ${JSON.stringify(t.dtype)}; only float32 is supported`);
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (t.length !== 4 * count || !Number.isSafeInteger(t.offset) || t.offset < 0 || t.offset + t.length > dataBytes) {
      fail(`${where} (dims [${t.dims}]) has an offset or length outside the data`);
    }
    if (tensors.has(t.name)) fail(`${where} appears twice`);
    tensors.set(t.name, { dims: t.dims, data: fromLeBytes(data.subarray(t.offset, t.offset + t.length)) });
  }
  const meta = header.meta && typeof header.meta === 'object' ? header.meta : {};
  return { model: header.model, sourceHash: header.sourceHash, meta, version, tensors };
}
