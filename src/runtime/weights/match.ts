/**
 * Which tensor of a weight file goes to which parameter of a model.
 *
 * By name when the names are cnnc's (`conv1.weight`, `repeat1.0.residual1.basic1.bn1.running_mean`):
 * a cnnc checkpoint or ONNX model, or any file holding every tensor the model needs under its name.
 *
 * Otherwise by structure: the model's layers with parameters, in execution order (`layers()`), are
 * aligned with the file's layers in the file's order (a state dict's modules, an ONNX graph's ops),
 * each pair checked for the same tensors (weight, bias, running_mean, running_var) of the same
 * shapes up to sizes of 1 (ConvNeXt's Linear layers on channels-last maps are 1x1 convolutions), and
 * for ONNX convolutions the same strides, dilations and padding. A state dict's
 * numbered modules keep their order; named ones (`conv1`, `bn1`, `downsample`) are taken in the
 * file's order unless the shapes need another (safetensors.torch.save_file sorts names: bn1 comes
 * before conv1), the first that fits in the file's order winning. Two rules bridge the formats:
 *
 * - Folded batch norm (torch.onnx.export in eval mode folds each batch norm into the convolution
 *   before it): a file convolution with a bias, where the model has a convolution without one fed
 *   straight into a bn, gives the convolution its weight and the bn the identity with that bias
 *   (γ = 1, β = the bias, mean 0, var = 1 - eps, so that (x - 0)/√(var + eps) = x): exact at
 *   inference; training then fine-tunes from folded statistics.
 * - Transfer learning (`train --init`): when everything matches up to the model's head (its final
 *   layers on flat vectors: dense after flatten) and the file's remaining layers are a head too (no
 *   convolutions), the model's head is initialised as usual and the file's is not used.
 *
 * Anything else that does not fit is an error naming both sides and the first mismatch.
 */
import { UserError } from '../../errors.ts';
import { formatShape } from '../../compiler/layers/types.ts';
import { finalLayer, layers, withChildren, type CheckedModel, type LayerNode, type Node } from '../../compiler/model.ts';
import type { WeightFile, WeightFormat } from './read.ts';
import { sameDims, sameLayout, type FileLayer, type FileTree } from './tensors.ts';

export interface ModelTensor {
  dims: number[];
  data: Float32Array;
}

/** One model tensor and where its value came from. */
export interface Pairing {
  /** The file's tensor name, or the value given (`1`, `0`, `1 - eps`) for a folded batch norm. */
  from: string;
  /** The file tensor's shape (absent for a given value). */
  dims?: number[];
  /** The model's tensor. */
  to: string;
  /** How the value was made, where not copied as it is. */
  how?: string;
}

export interface WeightMatch {
  file: string;
  format: WeightFormat;
  model: string;
  by: 'name' | 'structure';
  /** Values for the model's parameters and buffers, by their names. */
  tensors: Map<string, ModelTensor>;
  /** In the model's order. */
  pairs: Pairing[];
  /** bn layers given the identity and a folded bias. */
  folded: string[];
  /** Model tensors initialised as usual, and why. */
  initialised: { name: string; dims: number[]; why: string }[];
  /** File tensors the model does not use (a cnnc checkpoint's optimizer state aside). */
  unused: { name: string; dims: number[] }[];
  /** The model's layers with parameters, and how many got values from the file. */
  layers: { model: number; matched: number };
  notes: string[];
}

export interface MatchOptions {
  /**
   * `train --init`: a file without some of the model's tensors (by name), or with another head (by
   * structure), initialises those as usual. Otherwise every model tensor must come from the file.
   */
  transfer: boolean;
}

export function matchWeights(model: CheckedModel, wf: WeightFile, opts: MatchOptions): WeightMatch {
  const params = paramLayers(model);
  const namesFit = params.every((node) => node.params.every((spec) => {
    const t = wf.tensors.get(`${node.path}.${spec.name}`);
    return t !== undefined && sameDims(t.dims, spec.shape);
  }));
  if (wf.cnncNames || namesFit || !wf.tree) return byName(model, params, wf, opts);
  return new Aligner(model, params, wf, opts).run(wf.tree);
}

const paramLayers = (model: CheckedModel) => layers(model.root).filter((n) => n.params.length > 0);

function emptyMatch(model: CheckedModel, wf: WeightFile, by: WeightMatch['by'], modelLayers: number): WeightMatch {
  return {
    file: wf.file, format: wf.format, model: model.name, by, tensors: new Map(), pairs: [], folded: [], initialised: [], unused: [],
    layers: { model: modelLayers, matched: 0 }, notes: [...wf.notes],
  };
}

// ---------------------------------------------------------------------------------------------
// By name

function byName(model: CheckedModel, params: LayerNode[], wf: WeightFile, opts: MatchOptions): WeightMatch {
  const m = emptyMatch(model, wf, 'name', params.length);
  for (const node of params) {
    let complete = true;
    for (const spec of node.params) {
      const name = `${node.path}.${spec.name}`, need = [...spec.shape];
      const t = wf.tensors.get(name);
      const why = !t ? 'not in the file' : !sameDims(t.dims, need) ? `${formatShape(t.dims)} in the file` : undefined;
      if (why && !opts.transfer) {
        throw new UserError(t ? `tensor ${name} has shape ${formatShape(t.dims)} in ${wf.file}, but layer ${node.path} (${node.text}) needs ${formatShape(need)}`
          : `${wf.file} has no tensor ${name} (layer ${node.path}, ${node.text}, needs ${formatShape(need)})`);
      }
      if (why) {
        m.initialised.push({ name, dims: need, why });
        complete = false;
        continue;
      }
      m.tensors.set(name, { dims: need, data: t!.data });
      m.pairs.push({ from: name, dims: t!.dims, to: name });
    }
    if (complete) m.layers.matched++;
  }
  if (m.pairs.length === 0) throw new UserError(`no tensor matches a parameter of model ${model.name} by name`, wf.file);
  for (const [name, t] of wf.tensors) if (!m.tensors.has(name) && !name.startsWith('optim.')) m.unused.push({ name, dims: t.dims });
  return m;
}

// ---------------------------------------------------------------------------------------------
// By structure

/** A subtree that ended the matching: what follows in the file is a head the model does not use. */
const STOP = Symbol('stop');
type Result = number | typeof STOP | undefined;
/** Which of the remaining children went next, and where it ended. */
interface Choice { index: number; end: number | typeof STOP }

interface Assignment {
  layer: FileLayer;
  /** The model layer, and the bn it feeds when the file folded that into it. */
  node: LayerNode;
  foldedInto?: LayerNode;
}

class Aligner {
  private readonly assigned: Assignment[] = [];
  /** Where a named module was taken before one earlier in the file: "conv1 before bn1 in layer1.0". */
  private readonly reorders: string[] = [];
  private failure?: { pos: number; message: string };
  private stopAt?: number;
  /** The model's head: its final layers on flat vectors, from this index on. */
  private readonly headStart: number;
  /** A layer and the one that takes its output directly (for folding batch norm). */
  private readonly feeds: Map<LayerNode, LayerNode>;

  constructor(private readonly model: CheckedModel, private readonly params: LayerNode[], private readonly wf: WeightFile, private readonly opts: MatchOptions) {
    let head = params.length;
    while (head > 0 && params[head - 1].input!.length === 1) head--;
    this.headStart = head;
    this.feeds = directSuccessors(model.root);
  }

  run(root: FileTree): WeightMatch {
    const end = this.tree(root, 0, '');
    if (end === undefined) this.raise();
    const reached = end === STOP ? this.stopAt! : end;
    if (reached < this.params.length && !this.headMayDiffer(reached)) {
      const node = this.params[reached], spec = node.params[0];
      const last = this.assigned.at(-1)?.layer;
      this.raise(`${this.wf.format} ends${last ? ` after '${last.label}'` : ''} where model ${this.model.name} needs '${node.path}.${spec.name}' ${formatShape(spec.shape)} (layer ${reached + 1} of ${this.params.length})${this.hint(reached)}`);
    }
    const left = leaves(root).filter((l) => !this.assigned.some((a) => a.layer === l));
    if (left.some((l) => [...l.roles.values()].some((t) => t.dims.length > 2))) this.raise();
    return this.result(reached);
  }

  /** Whether the model's tensors from `pos` on may be left to their usual initialisation. */
  private headMayDiffer(pos: number): boolean {
    return this.opts.transfer && pos >= this.headStart && this.assigned.length > 0;
  }

  private hint(pos: number): string {
    return !this.opts.transfer && pos >= this.headStart ? '; only train --init takes a file whose final layers differ from the model\'s' : '';
  }

  private raise(message = this.failure?.message ?? `no layer of it fits model ${this.model.name}`): never {
    throw new UserError(message, this.wf.file);
  }

  /** Records why nothing fits at model layer `pos`; the furthest such place is the error. */
  private fail(pos: number, message: string): undefined {
    const where = pos < this.params.length ? ` (layer ${pos + 1} of ${this.params.length})` : '';
    if (!this.failure || pos > this.failure.pos) this.failure = { pos, message: `${message}${where}${this.hint(pos)}` };
    return undefined;
  }

  /** Aligns a subtree from model layer `pos`: the next position, STOP, or undefined where it does not fit. */
  private tree(t: FileTree, pos: number, where: string): Result {
    if (t.layer) return this.leaf(t.layer, pos);
    const inside = where ? `${where}.${t.name}` : t.name;
    const rest = [...t.children];
    while (rest.length > 0) {
      const choice = t.fixed ? this.first(rest[0], pos, inside) : this.choose(rest, pos, inside);
      if (choice === undefined) return this.stop(pos);
      const { index, end } = choice;
      if (end === STOP) return STOP;
      if (index > 0) this.reorders.push(`${rest[index].name} before ${rest[0].name}${inside ? ` in ${inside}` : ''}`);
      rest.splice(index, 1);
      pos = end;
    }
    return pos;
  }

  private first(child: FileTree, pos: number, where: string): Choice | undefined {
    const end = this.tree(child, pos, where);
    return end === undefined ? undefined : { index: 0, end };
  }

  /**
   * The first child, in the file's order, that fits from `pos`. One that ends the matching (a head
   * the model replaces) counts only when none fits.
   */
  private choose(rest: FileTree[], pos: number, where: string): Choice | undefined {
    let stopper = -1;
    for (let i = 0; i < rest.length; i++) {
      const mark = this.mark();
      const end = this.tree(rest[i], pos, where);
      if (typeof end === 'number') return { index: i, end };
      if (end === STOP && stopper < 0) stopper = i;
      this.restore(mark);
    }
    return stopper < 0 ? undefined : { index: stopper, end: this.tree(rest[stopper], pos, where)! };
  }

  private mark() {
    return { assigned: this.assigned.length, reorders: this.reorders.length, stopAt: this.stopAt };
  }

  private restore(m: ReturnType<Aligner['mark']>): void {
    this.assigned.length = m.assigned;
    this.reorders.length = m.reorders;
    this.stopAt = m.stopAt;
  }

  /** Nothing fits at `pos`: the end of the matching if the model's head may differ there. */
  private stop(pos: number): Result {
    if (!this.headMayDiffer(pos)) return undefined;
    this.stopAt = pos;
    return STOP;
  }

  private leaf(f: FileLayer, pos: number): Result {
    const node = this.params[pos];
    if (!node) return this.fail(pos, `${describe(f)} is left over: model ${this.model.name}'s ${this.params.length} layers with parameters all have theirs`);
    const direct = this.mismatch(f, node);
    if (!direct) {
      this.assigned.push({ layer: f, node });
      return pos + 1;
    }
    const bn = this.foldTarget(f, node, pos);
    if (bn) {
      this.assigned.push({ layer: f, node, foldedInto: bn });
      return pos + 2;
    }
    return this.fail(pos, direct);
  }

  /** Why file layer `f` cannot give model layer `node` its tensors, or undefined when it can. */
  private mismatch(f: FileLayer, node: LayerNode): string | undefined {
    const model = this.model.name;
    for (const spec of node.params) {
      const want = `'${node.path}.${spec.name}' ${formatShape(spec.shape)}`;
      const t = f.roles.get(spec.name);
      if (!t) return `${f.origin} '${f.label}' has no ${spec.name} where model ${model} needs ${want}`;
      if (!sameLayout(t.dims, spec.shape)) return `${f.origin} '${t.name}' ${formatShape(t.dims)} where model ${model} needs ${want}`;
    }
    for (const [role, t] of f.roles) {
      if (!node.params.some((s) => s.name === role)) return `${f.origin} '${t.name}' ${formatShape(t.dims)} has no place in model ${model}'s '${node.path}' (${node.text}), which has no ${role}`;
    }
    return this.windowMismatch(f, node);
  }

  /** An ONNX convolution's strides, dilations and padding against the model layer's. */
  private windowMismatch(f: FileLayer, node: LayerNode): string | undefined {
    const w = f.window && node.layer.window?.(node.input!, node.args);
    if (!w) return undefined;
    const pairs: [string, number[], readonly number[]][] = [['strides', f.window!.strides, w.stride], ['dilations', f.window!.dilations, w.dilation], ['pads', f.window!.pads, w.pads]];
    const bad = pairs.find(([, a, b]) => !sameDims(a, b));
    return bad && `${f.origin} '${f.label}' has ${bad[0]} [${bad[1].join(', ')}] where model ${this.model.name}'s '${node.path}' (${node.text}) has [${bad[2].join(', ')}]`;
  }

  /**
   * The bn a file convolution with a bias folded in: the model's convolution has only a weight of
   * the file's shape and feeds a bn of the bias's channels directly.
   */
  private foldTarget(f: FileLayer, conv: LayerNode, pos: number): LayerNode | undefined {
    const weight = f.roles.get('weight'), bias = f.roles.get('bias');
    const bn = this.params[pos + 1];
    if (!weight || !bias || f.roles.size !== 2 || !bn || this.feeds.get(conv) !== bn) return undefined;
    if (conv.params.length !== 1 || conv.params[0].name !== 'weight' || !sameDims(weight.dims, conv.params[0].shape) || this.windowMismatch(f, conv)) return undefined;
    return isUnfoldable(bn, bias.dims) ? bn : undefined;
  }

  private result(reached: number): WeightMatch {
    const m = emptyMatch(this.model, this.wf, 'structure', this.params.length);
    for (const a of this.assigned) {
      if (a.foldedInto) this.addFolded(m, a.layer, a.node, a.foldedInto);
      else for (const spec of a.node.params) {
        const t = a.layer.roles.get(spec.name)!;
        const how = a.layer.converted?.get(spec.name) ?? (sameDims(t.dims, spec.shape) ? undefined : `reshaped from ${formatShape(t.dims)}`);
        set(m, `${a.node.path}.${spec.name}`, spec.shape, t.data, { from: t.name, dims: t.dims, how });
      }
      m.layers.matched += a.foldedInto ? 2 : 1;
    }
    for (const node of this.params.slice(reached)) {
      for (const spec of node.params) m.initialised.push({ name: `${node.path}.${spec.name}`, dims: [...spec.shape], why: 'the model\'s head' });
    }
    // An Identity copy in an ONNX file shares its source's values: either name's use counts.
    const usedNames = new Set(m.pairs.map((p) => p.from)), usedData = new Set([...m.tensors.values()].map((t) => t.data));
    for (const t of this.wf.tensors.values()) if (!usedNames.has(t.name) && !usedData.has(t.data)) m.unused.push({ name: t.name, dims: t.dims });
    if (this.reorders.length) {
      m.notes.push(`the file's order of named modules differs from the model's in ${this.reorders.length} ${this.reorders.length === 1 ? 'place' : 'places'} (${this.reorders.slice(0, 2).join(', ')}${this.reorders.length > 2 ? ', …' : ''}): taken in the order the shapes fit, ties in the file's order`);
    }
    m.notes.push(...this.epsNotes());
    return m;
  }

  private addFolded(m: WeightMatch, f: FileLayer, conv: LayerNode, bn: LayerNode): void {
    const weight = f.roles.get('weight')!, bias = f.roles.get('bias')!;
    set(m, `${conv.path}.weight`, weight.dims, weight.data, { from: weight.name, dims: weight.dims });
    const tensors = bn.layer.unfold!(bias.data, bn.args);
    for (const spec of bn.params) {
      const t = tensors[spec.name];
      // The bias comes from the file (its name and dims); the rest are the constants unfold chose.
      const pairing = spec.name === 'bias' ? { from: bias.name, dims: bias.dims, how: t.from } : { from: t.from, how: 'batch norm folded in the file' };
      set(m, `${bn.path}.${spec.name}`, spec.shape, t.data, pairing);
    }
    m.folded.push(bn.path);
  }

  /** File batch norms whose epsilon differs from the model's bn (the outputs then differ slightly). */
  private epsNotes(): string[] {
    const differ = this.assigned.filter((a) => a.layer.eps !== undefined && Math.abs(a.layer.eps - (a.node.args.eps as number)) > 1e-6 * (a.node.args.eps as number));
    if (differ.length === 0) return [];
    const a = differ[0];
    return [`${differ.length} batch ${differ.length === 1 ? 'norm has' : 'norms have'} another epsilon in the file (${a.layer.label}: ${a.layer.eps}, the model's ${a.node.path}: ${a.node.args.eps}); write eps= on the model's bn to match`];
  }
}

function set(m: WeightMatch, name: string, dims: readonly number[], data: Float32Array, pairing: Omit<Pairing, 'to'>): void {
  m.tensors.set(name, { dims: [...dims], data });
  m.pairs.push({ ...pairing, to: name });
}

/** A normalisation that can take a folded bias (its kind has unfold), every tensor of `dims`. */
function isUnfoldable(node: LayerNode, dims: readonly number[]): boolean {
  return node.layer.unfold !== undefined && node.params.every((p) => sameDims(p.shape, dims));
}

function describe(f: FileLayer): string {
  const [t] = f.roles.values();
  return `${f.origin} '${t.name}' ${formatShape(t.dims)}`;
}

function leaves(t: FileTree, out: FileLayer[] = []): FileLayer[] {
  if (t.layer) out.push(t.layer);
  for (const c of t.children) leaves(c, out);
  return out;
}

/** The layer that takes `node`'s input first, through sequences; undefined when a combinator does. */
function firstLayer(node: Node): LayerNode | undefined {
  if (node.kind === 'layer') return node;
  if (node.kind !== 'seq') return undefined;
  const item = node.items.find((i) => i.kind !== 'seq' || layers(i).length > 0);
  return item && firstLayer(item);
}

/** Pairs (a, b) where layer b takes layer a's output and nothing else: consecutive in a sequence. */
function directSuccessors(root: Node): Map<LayerNode, LayerNode> {
  const out = new Map<LayerNode, LayerNode>();
  const visit = <C extends Node>(node: C): C => {
    if (node.kind === 'seq') {
      for (let i = 0; i + 1 < node.items.length; i++) {
        const a = finalLayer(node.items[i]), b = firstLayer(node.items[i + 1]);
        if (a && b) out.set(a, b);
      }
    }
    withChildren(node, visit);
    return node;
  };
  visit(root);
  return out;
}
