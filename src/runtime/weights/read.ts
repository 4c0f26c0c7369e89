/**
 * Reading any weight file cnnc takes (`compile --weights`, `train --init`, `predict --weights`):
 * a cnnc checkpoint, an ONNX model (cnnc's or another exporter's, e.g. torch.onnx.export) or a
 * safetensors state dict. PyTorch's pickles (.pth, .pt) are refused with the way to convert them:
 * unpickling a file can run any code in it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.ts';
import { decodeCheckpoint, isCheckpoint } from '../checkpoint.ts';
import { readOnnxWeights } from './onnx.ts';
import { decodeSafetensors, looksLikeSafetensors } from './safetensors.ts';
import type { FileLayer, FileTensor, FileTree } from './tensors.ts';

export type WeightFormat = 'cnnc checkpoint' | 'ONNX' | 'safetensors';

export interface WeightFile {
  file: string;
  format: WeightFormat;
  /** Float tensors by the file's names, in the file's order. */
  tensors: Map<string, FileTensor>;
  /** The file's layers (ONNX ops, or a state dict's modules), for matching by structure. */
  tree?: FileTree;
  /** The names are cnnc's own (a cnnc checkpoint, or an ONNX model cnnc compiled): matched by name only. */
  cnncNames: boolean;
  /** Class names a training checkpoint records (`meta.classes`). */
  classes?: string[];
  /** What the reader converted or left out, for the report. */
  notes: string[];
}

export function readWeightFile(file: string): WeightFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new UserError(`cannot read the weights (${(e as NodeJS.ErrnoException).code ?? String(e)})`, file);
  }
  if (isCheckpoint(bytes)) return checkpointFile(bytes, file);
  if (isPickle(bytes, file)) throw new UserError(pickleMessage(file), file);
  if (path.extname(file).toLowerCase() === '.safetensors' || looksLikeSafetensors(bytes)) return safetensorsFile(bytes, file);
  const onnx = readOnnxWeights(bytes, file);
  if (onnx.tensors.size === 0) throw new UserError('is neither a cnnc checkpoint, a safetensors file nor an ONNX model with float initializers', file);
  const tree: FileTree = { name: '', fixed: true, children: onnx.layers.map((layer) => ({ name: layer.label, layer, children: [], fixed: true })) };
  return { file, format: 'ONNX', tensors: onnx.tensors, tree, cnncNames: onnx.cnncModel !== undefined, notes: onnx.notes };
}

function checkpointFile(bytes: Uint8Array, file: string): WeightFile {
  const ckpt = decodeCheckpoint(bytes, file);
  const classes = ckpt.meta.classes;
  const named = Array.isArray(classes) && classes.every((c) => typeof c === 'string') ? classes as string[] : undefined;
  const tensors = new Map([...ckpt.tensors].map(([name, t]) => [name, { name, ...t }]));
  return { file, format: 'cnnc checkpoint', tensors, cnncNames: true, classes: named, notes: [] };
}

function safetensorsFile(bytes: Uint8Array, file: string): WeightFile {
  const st = decodeSafetensors(bytes, file);
  if (st.tensors.length === 0) throw new UserError('is a safetensors file without float tensors', file);
  return { file, format: 'safetensors', tensors: new Map(st.tensors.map((t) => [t.name, t])), tree: moduleTree(st.tensors), cnncNames: false, notes: st.notes };
}

// ---------------------------------------------------------------------------------------------
// A state dict's modules

class Module {
  readonly children = new Map<string, Module>();
  own?: FileLayer;
  /** How many children came before the module's own first tensor (where it sits among them). */
  ownAt = 0;
}

/**
 * A state dict's tensors as the tree of modules their names spell (`layer1.0.conv1.weight`: module
 * layer1 > 0 > conv1, role weight); a module's own tensors are one layer. Numbered children are
 * nn.Sequential's, run in their numbers' order; named ones keep the file's order.
 */
export function moduleTree(tensors: readonly FileTensor[]): FileTree {
  const root = new Module();
  for (const t of tensors) {
    const parts = t.name.split('.');
    const role = parts.pop()!;
    let m = root;
    for (const p of parts) {
      if (!m.children.has(p)) m.children.set(p, new Module());
      m = m.children.get(p)!;
    }
    if (!m.own) {
      m.own = { origin: 'safetensors', label: parts.join('.'), roles: new Map() };
      m.ownAt = m.children.size;
    }
    m.own.roles.set(role, t);
  }
  return toTree('', root);
}

function toTree(name: string, m: Module): FileTree {
  const numbered = !m.own && [...m.children.keys()].every((k) => /^\d+$/.test(k));
  const children = [...m.children].map(([k, c]) => toTree(k, c));
  if (numbered) children.sort((a, b) => Number(a.name) - Number(b.name));
  if (m.own) {
    const own: FileTree = { name, layer: m.own, children: [], fixed: true };
    if (children.length === 0) return own;
    children.splice(m.ownAt, 0, own);
  }
  return { name, children, fixed: numbered };
}

// ---------------------------------------------------------------------------------------------
// PyTorch pickles

/** torch.save's zip archive, a bare pickle (protocol 2 or later), or a pickle's usual extension. */
function isPickle(bytes: Uint8Array, file: string): boolean {
  const zip = bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
  const pickle = bytes[0] === 0x80 && bytes[1] >= 2 && bytes[1] <= 5;
  return zip || pickle || ['.pth', '.pt', '.pkl'].includes(path.extname(file).toLowerCase());
}

/**
 * The refusal, with a conversion to safetensors that needs torch alone (the state dict's float
 * tensors as float32, in the state dict's order, which is the order matching by structure wants).
 */
export function pickleMessage(file: string): string {
  const from = JSON.stringify(file);
  const to = JSON.stringify(file.replace(/\.[^./\\]*$/, '') + '.safetensors');
  return [
    'is a PyTorch pickle (torch.save); cnnc does not unpickle files (loading one can run any code in it). Convert its state dict to safetensors, with torch alone:',
    `    import torch, json, struct, itertools`,
    `    sd = {k: v.float().contiguous() for k, v in torch.load(${from}, map_location="cpu").items() if v.is_floating_point()}`,
    `    ends = list(itertools.accumulate(4 * v.numel() for v in sd.values())); h = json.dumps({k: {"dtype": "F32", "shape": list(v.shape), "data_offsets": [e - 4 * v.numel(), e]} for (k, v), e in zip(sd.items(), ends)}).encode()`,
    `    open(${to}, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(v.numpy().tobytes() for v in sd.values()))`,
    '  (a file holding a whole model rather than a state dict: torch.load(...).state_dict(); with the safetensors package installed, safetensors.torch.save_file(state_dict, FILE) writes the same)',
  ].join('\n');
}
