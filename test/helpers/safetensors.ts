/** safetensors files written for tests (the format PyTorch's safetensors.torch.save writes). */

/** One tensor: its name, dtype (F32, F16, BF16, F64, I64...), shape and little-endian bytes. */
export type Entry = [name: string, dtype: string, shape: number[], bytes: Uint8Array];

/** The file holding `entries` in order; `header` replaces the JSON header written (for broken files). */
export function safetensors(entries: Entry[], header?: Record<string, unknown>): Buffer {
  let offset = 0;
  const described: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  for (const [name, dtype, shape, bytes] of entries) {
    described[name] = { dtype, shape, data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header ?? described));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, ...entries.map((e) => e[3])]);
}
