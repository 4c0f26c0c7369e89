/**
 * A serialized ONNX model as text, one line per input, output, initializer and node, for the
 * committed graph dumps (test/graph-dumps.test.ts): refactors of the emitters show as diffs.
 * Tensors show their values, or a digest when there are many, so a changed constant still shows;
 * the dumps emit parameters without values (their initialisation is tested elsewhere).
 */
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import { toNum } from '../../src/compiler/onnx/builder.ts';

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;
const AttrType = onnx.AttributeProto.AttributeType;

/** Constants with at most this many values show them. */
const SHOWN_VALUES = 8;

const typeName = (t: number | null | undefined) => (DataType[t ?? 0] ?? `type${t}`).toLowerCase();

/** The shortest decimal that reads back as the same float32. */
function float32(v: number): string {
  if (!Number.isFinite(v) || v === 0) return String(v);
  for (let p = 1; p < 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return String(s);
  }
  return String(v);
}

function tensorValues(t: O.ITensorProto): string[] | undefined {
  const raw = t.rawData && t.rawData.length ? t.rawData : undefined;
  const view = raw && new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (t.dataType) {
    case DataType.FLOAT: return view ? Array.from({ length: view.byteLength / 4 }, (_, i) => float32(view.getFloat32(i * 4, true))) : (t.floatData ?? []).map(float32);
    case DataType.INT64: return view ? Array.from({ length: view.byteLength / 8 }, (_, i) => String(view.getBigInt64(i * 8, true))) : (t.int64Data ?? []).map((v) => String(toNum(v)));
    case DataType.INT32: return view ? Array.from({ length: view.byteLength / 4 }, (_, i) => String(view.getInt32(i * 4, true))) : (t.int32Data ?? []).map(String);
    default: return undefined;
  }
}

/** `float [3,3]` and its values, `= [1, 2]`, or for many a digest of the bytes, `sha256:0123abcd`; none for a tensor without data. */
function tensorText(t: O.ITensorProto): string {
  const head = `${typeName(t.dataType)} [${(t.dims ?? []).map(toNum).join(',')}]`;
  const values = tensorValues(t);
  if (values?.length === 0) return head;
  if (values && values.length <= SHOWN_VALUES) return `${head} = [${values.join(', ')}]`;
  const bytes = onnx.TensorProto.encode({ ...t, name: '' }).finish();
  return `${head} sha256:${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}`;
}

function valueText(v: O.IValueInfoProto): string {
  const tt = v.type?.tensorType;
  const dims = (tt?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : String(toNum(d.dimValue ?? 0))));
  return `${v.name}: ${typeName(tt?.elemType)} [${dims.join(',')}]`;
}

function attrText(a: O.IAttributeProto, indent: string, lines: string[]): string {
  switch (a.type) {
    case AttrType.INT: return `${a.name}=${toNum(a.i ?? 0)}`;
    case AttrType.INTS: return `${a.name}=[${(a.ints ?? []).map(toNum).join(',')}]`;
    case AttrType.FLOAT: return `${a.name}=${float32(a.f ?? 0)}`;
    case AttrType.FLOATS: return `${a.name}=[${(a.floats ?? []).map(float32).join(',')}]`;
    case AttrType.STRING: return `${a.name}=${JSON.stringify(new TextDecoder().decode(a.s ?? new Uint8Array()))}`;
    case AttrType.TENSOR: return `${a.name}=${tensorText(a.t!)}`;
    case AttrType.GRAPH:
      graphLines(a.g!, `${indent}    `, lines);
      return `${a.name}=<graph ${a.g!.name} below>`;
    default: return `${a.name}=<${AttrType[a.type ?? 0]}>`;
  }
}

/** Appends the graph's lines; a node's subgraphs follow it, indented. */
function graphLines(g: O.IGraphProto, indent: string, lines: string[]): void {
  lines.push(`${indent}graph ${g.name}`);
  for (const v of g.input ?? []) lines.push(`${indent}input ${valueText(v)}`);
  for (const v of g.output ?? []) lines.push(`${indent}output ${valueText(v)}`);
  for (const t of g.initializer ?? []) lines.push(`${indent}init ${t.name}: ${tensorText(t)}`);
  for (const n of g.node ?? []) {
    const sub: string[] = [];
    const attrs = (n.attribute ?? []).map((a) => attrText(a, indent, sub));
    const op = n.domain ? `${n.domain}:${n.opType}` : n.opType;
    lines.push(`${indent}${op}(${(n.input ?? []).join(', ')}) -> ${(n.output ?? []).join(', ')}${attrs.length ? `  ${attrs.join(' ')}` : ''}`);
    lines.push(...sub);
  }
}

/** The model's opset imports and graph as text. */
export function graphText(bytes: Uint8Array): string {
  const m = onnx.ModelProto.decode(bytes);
  const lines = [`opset ${(m.opsetImport ?? []).map((o) => `${o.domain || 'ai.onnx'}:${toNum(o.version ?? 0)}`).join(' ')}`];
  graphLines(m.graph!, '', lines);
  return `${lines.join('\n')}\n`;
}
