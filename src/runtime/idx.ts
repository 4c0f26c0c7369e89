/**
 * Reader and writer for IDX files, the format of MNIST and Fashion-MNIST:
 * two zero bytes, a type byte, a dimension count, one big-endian uint32 per dimension, then the data.
 * Files may be gzipped; we detect that from the content, since names are often wrong.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { UserError } from '../errors.ts';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64',
};

function readBytes(path: string): Uint8Array {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new UserError(`cannot read IDX file: ${(e as Error).message}`, path);
  }
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return gunzipSync(raw);
  } catch (e) {
    throw new UserError(`corrupt gzip data (${(e as Error).message}); the file may be truncated`, path);
  }
}

/** Reads an IDX file of unsigned bytes, checking the header and that the length matches the dimensions exactly. */
export function readIdx(path: string): IdxArray {
  const bytes = readBytes(path);
  if (bytes.length === 0) throw new UserError('the IDX file is empty (0 bytes); it may have been cut off while copying', path);
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new UserError('not an IDX file (it must start with two zero bytes, a type byte and a dimension count)', path);
  }
  const type = bytes[2], ndims = bytes[3];
  if (type !== 0x08) {
    const name = TYPE_NAMES[type] ? `${TYPE_NAMES[type]} (0x${type.toString(16)})` : `unknown (0x${type.toString(16)})`;
    throw new UserError(`IDX element type ${name} is not supported; only unsigned bytes (0x08) are`, path);
  }
  if (ndims === 0) throw new UserError('IDX file declares zero dimensions', path);
  const headerLen = 4 + 4 * ndims;
  if (bytes.length < headerLen) {
    throw new UserError(`IDX header truncated: expected ${headerLen} header bytes, file has ${bytes.length}`, path);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i, false));
  const expected = headerLen + dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== expected) {
    const what = bytes.length < expected ? 'truncated or corrupt' : 'has trailing bytes';
    throw new UserError(
      `IDX file ${what}: dimensions [${dims.join(', ')}] need ${expected} bytes, file has ${bytes.length}`, path);
  }
  return { dims, data: bytes.subarray(headerLen) };
}

/** Writes an unsigned-byte IDX file (used by tests and for exporting data sets). */
export function writeIdx(path: string, dims: number[], data: Uint8Array, opts: { gzip?: boolean } = {}): void {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`writeIdx: dims [${dims.join(', ')}] need ${count} bytes, got ${data.length}`);
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const bytes = Buffer.concat([header, data]);
  writeFileSync(path, opts.gzip ? gzipSync(bytes) : bytes);
}
