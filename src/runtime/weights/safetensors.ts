/**
 * The safetensors format (Hugging Face's; what PyTorch state dicts are shared as), read without a
 * dependency. A file is:
 *
 *   8 bytes     N, the header's length, unsigned little-endian
 *   N bytes     a JSON object, UTF-8 (may end in spaces): for each tensor
 *               "name": {"dtype": "F32", "shape": [64, 3, 7, 7], "data_offsets": [begin, end]},
 *               and optionally "__metadata__": {string: string}
 *   the rest    the tensors' raw little-endian bytes; offsets count from the end of the header
 *
 * Float tensors (F32, and F16, BF16, F64 converted with a note) are read; integer ones
 * (batch norm's `num_batches_tracked` counters, I64) are left out.
 */
import { UserError } from '../../errors.ts';
import { conversionNotes, FLOAT_BYTES, toFloat32, type FileTensor, type FloatType } from './tensors.ts';

const OTHER_BYTES: Readonly<Record<string, number>> = {
  I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

export interface Safetensors {
  /** Float tensors in the order of their data in the file. */
  tensors: FileTensor[];
  notes: string[];
}

interface Entry { name: string; dtype: string; shape: number[]; begin: number; end: number }

/** Whether `bytes` start the way a safetensors file does: a plausible header length, then `{`. */
export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 9) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return n > 1n && n <= BigInt(bytes.byteLength - 8) && bytes[8] === 0x7b;
}

/** Parses a safetensors file; every problem is a UserError naming `file` and what is wrong. */
export function decodeSafetensors(bytes: Uint8Array, file: string): Safetensors {
  const fail = (why: string): never => { throw new UserError(`not a valid safetensors file: ${why}`, file); };
  if (bytes.byteLength < 8) fail(`truncated: ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(bytes.byteLength - 8)) fail(`its header length ${length} runs past the end of the file (${bytes.byteLength} bytes; truncated?)`);
  const headerEnd = 8 + Number(length);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, headerEnd)));
  } catch (e) {
    return fail(`its header is not valid JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('its header is not a JSON object');
  const entries = Object.entries(header as Record<string, unknown>).filter(([name]) => name !== '__metadata__').map(([name, v]) => entry(name, v, fail));
  checkLayout(entries, bytes.byteLength - headerEnd, fail);
  entries.sort((a, b) => a.begin - b.begin);
  const data = bytes.subarray(headerEnd);
  const converted = new Map<string, number>();
  const tensors: FileTensor[] = [];
  for (const e of entries) {
    if (!(e.dtype in FLOAT_BYTES)) continue;
    const type = e.dtype as FloatType;
    if (type !== 'F32') converted.set(type, (converted.get(type) ?? 0) + 1);
    tensors.push({ name: e.name, dims: e.shape, data: toFloat32(data.subarray(e.begin, e.end), type) });
  }
  const skipped = entries.filter((e) => !(e.dtype in FLOAT_BYTES) && !e.name.endsWith('num_batches_tracked'));
  const notes = conversionNotes(converted);
  if (skipped.length) notes.push(`${skipped.length} non-float ${skipped.length === 1 ? 'tensor' : 'tensors'} left out (${skipped.slice(0, 3).map((e) => `${e.name} ${e.dtype}`).join(', ')}${skipped.length > 3 ? ', …' : ''})`);
  return { tensors, notes };
}

/** One header entry, checked: a known dtype, a shape of counts, and offsets that fit the shape. */
function entry(name: string, v: unknown, fail: (why: string) => never): Entry {
  const where = `tensor ${JSON.stringify(name)}`;
  const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (!e || typeof e !== 'object') fail(`${where} is not described by an object`);
  const size = typeof e.dtype === 'string' ? (FLOAT_BYTES as Record<string, number>)[e.dtype] ?? OTHER_BYTES[e.dtype] : undefined;
  if (size === undefined) fail(`${where} has an unknown dtype ${JSON.stringify(e.dtype)}`);
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`${where} has no valid shape`);
  const offsets = e.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) fail(`${where} has no valid data_offsets`);
  const [begin, end] = offsets as number[];
  const need = (shape as number[]).reduce((a, b) => a * b, 1) * size!;
  if (end < begin || end - begin !== need) {
    fail(`${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${e.dtype} [${shape}] needs ${need}`);
  }
  return { name, dtype: e.dtype as string, shape: shape as number[], begin, end };
}

/** Every tensor's bytes lie inside the data and no two overlap. */
function checkLayout(entries: Entry[], dataBytes: number, fail: (why: string) => never): void {
  for (const e of entries) {
    if (e.end > dataBytes) fail(`tensor ${JSON.stringify(e.name)} ends at byte ${e.end} of the data, which has ${dataBytes} (truncated?)`);
  }
  const sorted = [...entries].filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) {
      fail(`tensors ${JSON.stringify(sorted[i - 1].name)} [${sorted[i - 1].begin}, ${sorted[i - 1].end}] and ${JSON.stringify(sorted[i].name)} [${sorted[i].begin}, ${sorted[i].end}] overlap`);
    }
  }
}
