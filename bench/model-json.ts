/**
 * Serialises a checked cnnc model (the architecture only, no weights) to JSON, for
 * bench/torch_model.py to rebuild the same network in PyTorch. Every layer carries its kind,
 * resolved arguments, explicit pads (for windowed layers) and shapes; combinators carry their
 * children. Also a CLI: `node --import tsx bench/model-json.ts FILE.cnn [MODEL]` prints the JSON.
 */
import { readFileSync } from 'node:fs';
import { check } from '../src/index.ts';
import { assertNever, type CheckedModel, type Node, type SeqNode } from '../src/compiler/model.ts';

export type JsonNode =
  | {
    kind: 'layer';
    path: string;
    layer: string;
    args: Record<string, unknown>;
    /** [top, left, bottom, right] for conv, dwconv and the windowed pools. */
    pads?: number[];
    kernel?: number[];
    stride?: number[];
    dilation?: number[];
    input: number[];
    output: number[];
    /** Trainable parameter count of this layer (frozen layers included). */
    params: number;
  }
  | { kind: 'seq'; path: string; input: number[]; output: number[]; items: JsonNode[] }
  | { kind: 'residual'; path: string; input: number[]; output: number[]; body: JsonNode; shortcut: JsonNode | null }
  | { kind: 'concat' | 'add'; path: string; input: number[]; output: number[]; branches: JsonNode[] }
  | { kind: 'gate'; path: string; input: number[]; output: number[]; body: JsonNode };

export interface JsonModel {
  name: string;
  input: number[];
  output: number[];
  /** Trainable parameters as cnnc counts them, frozen layers included (PyTorch's parameters()). */
  trainable: number;
  /** cnnc's own totals, for reference. */
  totals: CheckedModel['totals'];
  root: JsonNode;
}

function shapes(node: Node) {
  if (!node.input || !node.output) throw new Error(`${node.path || 'model'}: shape not inferred`);
  return { input: [...node.input], output: [...node.output] };
}

function plainArgs(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) out[k] = Array.isArray(v) ? [...v] : v;
  return out;
}

export function nodeToJson(node: Node): JsonNode {
  const s = shapes(node);
  switch (node.kind) {
    case 'layer': {
      const params = node.params.filter((p) => p.trainable).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
      const j: JsonNode = { kind: 'layer', path: node.path, layer: node.layer.name, args: plainArgs(node.args), ...s, params };
      if (node.window) {
        j.pads = [...node.window.pads];
        j.kernel = [...node.window.kernel];
        j.stride = [...node.window.stride];
        j.dilation = [...node.window.dilation];
      }
      return j;
    }
    case 'seq':
      return { kind: 'seq', path: node.path, ...s, items: node.items.map(nodeToJson) };
    case 'residual':
      return { kind: 'residual', path: node.path, ...s, body: nodeToJson(node.body), shortcut: node.shortcut ? nodeToJson(node.shortcut) : null };
    case 'concat':
    case 'add':
      return { kind: node.kind, path: node.path, ...s, branches: node.branches.map(nodeToJson) };
    case 'gate':
      return { kind: 'gate', path: node.path, ...s, body: nodeToJson(node.body) };
    default:
      return assertNever(node);
  }
}

/** Frozen layers' parameters count as non-trainable in cnnc, but PyTorch's parameters() lists them. */
function allLayerParams(root: SeqNode): number {
  let n = 0;
  const walk = (j: JsonNode): void => {
    switch (j.kind) {
      case 'layer': n += j.params; break;
      case 'seq': j.items.forEach(walk); break;
      case 'residual': walk(j.body); if (j.shortcut) walk(j.shortcut); break;
      case 'concat': case 'add': j.branches.forEach(walk); break;
      case 'gate': walk(j.body); break;
    }
  };
  walk(nodeToJson(root));
  return n;
}

export function modelToJson(model: CheckedModel): JsonModel {
  if (!model.input || !model.output) throw new Error(`model ${model.name} has errors`);
  const root = nodeToJson(model.root);
  return { name: model.name, input: [...model.input], output: [...model.output], trainable: allLayerParams(model.root), totals: model.totals, root };
}

/** Checks a file and returns its model (the first, or the named one), refusing errors. */
export function loadModel(file: string, name?: string): CheckedModel {
  const result = check(readFileSync(file, 'utf8'), file);
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`${file}: ${errors[0].message}`);
  const model = name ? result.models.find((m) => m.name === name) : result.models[0];
  if (!model) throw new Error(`${file}: no model ${name ?? ''}`);
  return model;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, name] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node --import tsx bench/model-json.ts FILE.cnn [MODEL]');
    process.exit(2);
  }
  console.log(JSON.stringify(modelToJson(loadModel(file, name)), null, 1));
}
