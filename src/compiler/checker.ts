/**
 * The checker: expands blocks and repetitions, binds arguments, infers every tensor's shape,
 * counts parameters and MACs, tracks the receptive field, and reports diagnostics.
 */
import type * as A from './ast.ts';
import { bindArgs, bindBlockArgs, evaluate, showValue, useOf, type AnyArg, type Env, type Value } from './args.ts';
import { closestName, diagnostic, missingArrow, uniqueDiagnostics, useRelated, type Diagnostic, type DiagnosticExtras, type CatalogKey } from './diagnostics.ts';
import { layerNames, lookupLayer } from './layers/index.ts';
import { formatShape, product, ShapeFailure, type ArgSpec, type ArgValue, type Args, type LayerKind, type Shape, type ShapeContext, type ShapeExtras } from './layers/types.ts';
import { layers, withChildren, type CheckedModel, type LayerNode, type Node, type Receptive, type SeqNode } from './model.ts';
import { isImported, type Span } from './source.ts';
import { checkTrainSection } from './train-config.ts';
import { findRecursiveBlocks } from './recursion.ts';
import { ExpansionSize } from './expansion.ts';
import { combinatorOf } from './combinators/index.ts';
import type { CheckContext, Flow, Scope } from './combinators/types.ts';
import { windowReceptive } from './layers/window.ts';
import { ownSpans, sameFlow, type CachedStep, type LayerSums, type StepLookup } from './step-cache.ts';

// 20,000 layers check in about 0.1 s (0.3 s on a loaded 2-core machine); the largest published
// classifiers have under 1,000, and a 1,000-line generated file about 7,000.
const MAX_LAYERS = 20_000;
const MAX_CALL_DEPTH = 64;
const MAX_ELEMENTS = 2 ** 31;
const MAX_EXACT = 2 ** 53;

/** Words that are option values (`pad=same`, `bias=off`), never misspelt layers. */
const OPTION_WORDS = new Set(['same', 'valid', 'on', 'off', 'true', 'false', 'yes', 'no']);

const inputArgs: ArgSpec[] = [
  { name: 'mean', type: 'enum', doc: 'per-channel mean subtracted in preprocessing' },
  { name: 'std', type: 'enum', doc: 'per-channel standard deviation' },
  { name: 'classes', type: 'enum', doc: 'class names, in label order' },
];

/**
 * `cache` (the language server's) reuses the checks of unchanged top-level steps; see step-cache.ts.
 * `imported`: the blocks of the files the file imports (imports.ts), whose names it does not declare.
 */
export function checkFile(file: A.SourceFile, diagnostics: Diagnostic[], cache?: StepLookup, imported: readonly A.BlockDecl[] = []): CheckedModel[] {
  const blocks = new Map<string, A.BlockDecl>();
  for (const b of file.blocks) {
    if (!b.name) continue;
    if (blocks.has(b.name) || lookupLayer(b.name)) {
      diagnostics.push(diagnostic('duplicateName', b.nameSpan, { what: lookupLayer(b.name) ? 'block (shadowing a layer kind)' : 'block', name: b.name }));
    } else blocks.set(b.name, b);
  }
  for (const b of imported) if (!blocks.has(b.name)) blocks.set(b.name, b);
  const recursive = findRecursiveBlocks(blocks, diagnostics);
  const expansion = new ExpansionSize(blocks, recursive);
  const seen = new Set<string>();
  const models = file.models.filter((m) => m.name).map((m) => {
    if (seen.has(m.name)) diagnostics.push(diagnostic('duplicateName', m.nameSpan, { what: 'model', name: m.name }));
    seen.add(m.name);
    const own: Diagnostic[] = [];
    const checked = new ModelChecker(blocks, recursive, expansion, own, cache).check(m);
    // A cached step brings its own report of a mistake the rest of the model may report again.
    const model = { ...checked, diagnostics: uniqueDiagnostics(own) };
    for (const d of model.diagnostics) diagnostics.push(d); // not push(...own): a spread of many arguments overflows the stack
    return model;
  });
  cache?.finish();
  if (file.models.length === 0 && diagnostics.length === 0) diagnostics.push(diagnostic('noModels', { start: 0, end: 0 }, {}));
  return models;
}

class ModelChecker implements CheckContext {
  private layerCount = 0;
  private overflowReported = false;
  /** Unknown names reported, by step: a repeat or block reports the same diagnostic for each copy, worked out once. */
  private readonly unknownReported = new WeakMap<A.LayerStep, Diagnostic>();
  private inputExtent: [number, number] = [1, 1];

  constructor(
    private readonly blocks: ReadonlyMap<string, A.BlockDecl>,
    private readonly recursive: ReadonlySet<string>,
    private readonly sizes: ExpansionSize,
    readonly diags: Diagnostic[],
    private readonly cache?: StepLookup,
  ) {}

  check(m: A.ModelDecl): CheckedModel {
    const input = this.inputShape(m);
    if (input?.length === 3) this.inputExtent = [input[1], input[2]];
    const flow: Flow = { shape: input, rf: input ? { size: [1, 1], jump: [1, 1] } : null };
    const scope: Scope = { env: new Map(), path: '', counters: new Map(), labels: new Set(), frozen: false, depth: 0 };
    const root = this.chain(m.body, flow, scope, m.body.span);
    if (m.body.steps.length === 0) this.diags.push(diagnostic('emptyModel', m.nameSpan, { model: m.name }));
    const totals = this.totals(root, m);
    return {
      name: m.name,
      span: m.span,
      nameSpan: m.nameSpan,
      input,
      output: root.output,
      root,
      preprocess: this.preprocess(m, input),
      totals,
      train: checkTrainSection(m.train, this.diags),
      diagnostics: this.diags,
    };
  }

  private inputShape(m: A.ModelDecl): Shape | null {
    const dims = m.input?.dims;
    if (!m.input || !dims) {
      this.diags.push(diagnostic('missingInput', m.nameSpan, { model: m.name }, { hint: 'start the model with a line like: input 3x224x224' }));
      return null;
    }
    const v = evaluate(dims, new Map(), this.diags);
    const shape = v?.kind === 'dims' ? v.values : v?.kind === 'number' ? [v.value] : undefined;
    if (!shape || shape.length === 2 || shape.length > 3 || !shape.every((n) => Number.isInteger(n) && n >= 1)) {
      this.diags.push(diagnostic('badInput', dims.span, { detail: `input shape ${v ? showValue(v) : '?'} must be CxHxW (e.g. 3x224x224) or a vector length, with positive integers` }));
      return null;
    }
    return this.sizeCheck(shape, dims.span) ? shape : null;
  }

  private preprocess(m: A.ModelDecl, input: Shape | null): CheckedModel['preprocess'] {
    const channels = input?.length === 3 ? input[0] : 1;
    const result: CheckedModel['preprocess'] = { mean: Array(channels).fill(0), std: Array(channels).fill(1) };
    for (const arg of m.input?.args ?? []) {
      const v = evaluate(arg.value, new Map(), this.diags);
      if (!v) continue;
      const items = v.kind === 'list' ? v.items : [v];
      if (arg.name === 'classes') {
        result.classes = items.map((i) => (i.kind === 'string' ? i.value : showValue(i)));
      } else if (arg.name === 'mean' || arg.name === 'std') {
        const nums = items.map((i) => (i.kind === 'number' ? i.value : NaN));
        const fits = nums.length === 1 || nums.length === channels;
        if (!fits || nums.some((n) => Number.isNaN(n)) || (arg.name === 'std' && nums.some((n) => n <= 0))) {
          this.diags.push(diagnostic('badInput', arg.span, { detail: `input ${arg.name} must be ${arg.name === 'std' ? 'positive numbers' : 'numbers'}, one per channel (${channels}) or one for all` }));
        } else result[arg.name] = nums.length === 1 ? Array(channels).fill(nums[0]) : nums;
      } else {
        const guess = closestName(arg.name ?? '', inputArgs.map((a) => a.name));
        this.diags.push(diagnostic('unknownOption', arg.nameSpan ?? arg.span, { layer: 'input', option: arg.name ?? '' }, { hint: guess ? `did you mean "${guess}"?` : 'input takes mean, std and classes' }));
      }
    }
    return result;
  }

  chain(chain: A.Chain, flow: Flow, scope: Scope, span: Span, origin?: SeqNode['origin']): SeqNode {
    const start = { ...flow };
    const items: Node[] = [];
    for (const step of chain.steps) {
      const parts = step.kind === 'layer' ? this.missingArrows(step, scope) : undefined;
      // A step with arrows missing in it is checked as the steps it stands for (and never cached: it is wrong).
      for (const part of parts ?? [step]) {
        const node = parts ? this.checkStep(part, flow, scope) : this.step(part, flow, scope);
        if (node) items.push(node);
      }
    }
    return { kind: 'seq', path: scope.path, span, input: start.shape, output: flow.shape, rf: flow.rf, frozen: scope.frozen, items, origin };
  }

  /**
   * `conv 8 3x3 pad=1 bn relu` (a line break taken for a "->"): a layer step whose positional
   * arguments run past what its layer or block takes, into a layer's or block's name, stands for
   * several steps. Reported once, with the arrows as fixes; undefined for any other step.
   */
  private missingArrows(step: A.LayerStep, scope: Scope): A.LayerStep[] | undefined {
    const parts: A.LayerStep[] = [];
    let rest = step;
    for (let capacity = this.positionalCapacity(rest, scope); capacity !== undefined; capacity = this.positionalCapacity(rest, scope)) {
      let positional = 0;
      const at = rest.args.findIndex((a) => a.name === undefined && positional++ >= capacity && this.namesStep(a.value, scope));
      if (at < 0) break;
      const head = rest.args[at].value as Extract<A.Expr, { kind: 'name' | 'call' }>;
      const args = rest.args.slice(at + 1);
      const last = rest.args[at - 1] ?? undefined;
      parts.push({ ...rest, args: rest.args.slice(0, at), span: { start: rest.span.start, end: last ? last.span.end : rest.nameSpan.end } });
      rest = {
        kind: 'layer',
        name: head.kind === 'name' ? head.name : head.callee,
        nameSpan: head.kind === 'name' ? head.span : head.calleeSpan,
        args: head.kind === 'call' ? [...head.args, ...args] : args,
        span: { start: head.span.start, end: args.at(-1)?.span.end ?? head.span.end },
      };
    }
    if (parts.length === 0) return undefined;
    parts.push(rest);
    const [first, ...more] = parts.slice(1).map((p) => ({ name: p.name, span: p.nameSpan }));
    this.diags.push(missingArrow(first.name, first.span, more));
    return parts;
  }

  /** How many positional arguments the layer or block a step names takes; undefined when it names neither (or a parameter). */
  private positionalCapacity(step: A.LayerStep, scope: Scope): number | undefined {
    if (scope.env.has(step.name)) return undefined;
    const block = this.blocks.get(step.name);
    if (block) return block.params.length;
    return lookupLayer(step.name)?.args.filter((a) => a.positional).length;
  }

  /** Whether an argument names a layer kind or block (not a parameter): the start of a step. */
  private namesStep(e: A.Expr, scope: Scope): boolean {
    const name = e.kind === 'name' ? e.name : e.kind === 'call' ? e.callee : undefined;
    return name !== undefined && !scope.env.has(name) && (this.blocks.has(name) || lookupLayer(name) !== undefined);
  }

  /** A step of the model's own chain comes from the cache when nothing it depends on changed. */
  private step(step: A.Step, flow: Flow, scope: Scope): Node | undefined {
    const named = this.cache && scope.depth === 0 ? this.nextName(step, scope) : undefined;
    if (!named) return this.checkStep(step, flow, scope);
    const path = scope.path ? `${scope.path}.${named.name}` : named.name;
    const entries = this.cache!.get(step);
    let hit = entries.find((e) => e.path === path && this.fits(e, flow, scope));
    // A step renamed by one added or removed before it (`residual12` is now `residual13`): the same
    // check under the new name, when it reported nothing (a message may quote a name).
    const renamed = hit ? undefined : entries.find((e) => e.diagnostics.length === 0 && this.fits(e, flow, scope));
    if (renamed) hit = { ...renamed, path, node: withPath(renamed.node, renamed.path, path) };
    if (hit && this.layerCount + hit.layers <= MAX_LAYERS) {
      // Take the name as childPath would have.
      scope.labels.add(named.name);
      if (!step.label) scope.counters.set(named.base, named.count);
      this.layerCount += hit.layers;
      for (const d of hit.diagnostics) this.diags.push(d);
      flow.shape = hit.output.shape;
      flow.rf = hit.output.rf;
      this.cache!.keep(step, hit);
      return hit.node;
    }
    const input = { ...flow };
    const firstDiag = this.diags.length;
    const layersBefore = this.layerCount;
    const node = this.checkStep(step, flow, scope);
    if (node && node.path === path && !this.overflowReported) {
      const diagnostics = this.diags.slice(firstDiag);
      diagnostics.forEach(ownSpans);
      this.cache!.keep(step, {
        path, frozen: scope.frozen, inputExtent: this.inputExtent, input, output: { ...flow }, node,
        layers: this.layerCount - layersBefore, diagnostics,
      });
    }
    return node;
  }

  /** Whether a cached check of a step holds for this flow into it (its name aside). */
  private fits(entry: CachedStep, flow: Flow, scope: Scope): boolean {
    return entry.frozen === scope.frozen && sameList(entry.inputExtent, this.inputExtent) && sameFlow(entry.input, flow);
  }

  /**
   * The name childPath would give the step, without taking it; undefined for steps that are not
   * cached: `frozen { }` (its body's steps are, one by one), unknown layers, repeated labels.
   */
  private nextName(step: A.Step, scope: Scope): { base: string; name: string; count: number } | undefined {
    let base: string;
    if (step.kind === 'layer') {
      const known = this.blocks.get(step.name)?.name ?? lookupLayer(step.name)?.name;
      if (!known) return undefined;
      base = known;
    } else if (combinatorOf(step).named) base = step.kind;
    else return undefined;
    if (step.label) return scope.labels.has(step.label.name) ? undefined : { base, name: step.label.name, count: 0 };
    let n = scope.counters.get(base) ?? 0;
    let name: string;
    do name = `${base}${++n}`;
    while (scope.labels.has(name));
    return { base, name, count: n };
  }

  private checkStep(step: A.Step, flow: Flow, scope: Scope): Node | undefined {
    return step.kind === 'layer' ? this.layerOrCall(step, flow, scope) : combinatorOf(step).check(step, this, flow, scope);
  }

  /** A child scope named by the step's label or by its kind and a counter (`conv3`, `residual2`). */
  childPath(scope: Scope, base: string, label: A.Step['label']): string {
    // `labels` holds every name used in this scope, given or generated, so none can clash.
    let name: string;
    if (label) {
      if (scope.labels.has(label.name)) this.diags.push(diagnostic('duplicateName', label.span, { what: 'layer name', name: label.name }));
      name = label.name;
    } else {
      let n = scope.counters.get(base) ?? 0;
      do name = `${base}${++n}`;
      while (scope.labels.has(name));
      scope.counters.set(base, n);
    }
    scope.labels.add(name);
    return scope.path ? `${scope.path}.${name}` : name;
  }

  subScope(scope: Scope, path: string, env = scope.env): Scope {
    return { env, path, counters: new Map(), labels: new Set(), frozen: scope.frozen, depth: scope.depth + 1 };
  }

  private layerOrCall(step: A.LayerStep, flow: Flow, scope: Scope): Node | undefined {
    const use = useOf(step, scope.env);
    if ('notALayer' in use) return this.notALayer(step, use.notALayer), this.invalidate(flow), undefined;
    const block = this.blocks.get(use.name);
    if (block) return this.call(block, step, use.args, flow, scope);
    const kind = lookupLayer(use.name);
    if (!kind && use.name !== step.name) {
      // A parameter holding a name that is no layer or block (`same`, a misspelling).
      return this.notALayer(step, scope.env.get(step.name)!), this.invalidate(flow), undefined;
    }
    if (!kind) {
      let d = this.unknownReported.get(step);
      if (!d) {
        const guess = closestName(step.name, [...layerNames, ...this.blocks.keys()]);
        d = diagnostic('unknownLayer', step.nameSpan, { name: step.name }, {
          hint: guess ? `did you mean "${guess}"?` : 'run `cnnc check --list-layers` to see the layer kinds',
          fixes: guess ? [{ title: `change to "${guess}"`, span: step.nameSpan, text: guess }] : undefined,
        });
        this.unknownReported.set(step, d);
      }
      this.diags.push({ ...d, span: { ...d.span } }); // a span of its own: a cached check's spans are moved in place
      this.invalidate(flow);
      return undefined;
    }
    const bound = bindArgs(kind.args, use.args, kind.name, step.nameSpan, scope.env, this.diags);
    const path = this.childPath(scope, kind.name, step.label);
    const node = this.layer(kind, bound.ok ? bound.values : null, flow, scope, path, step.span, bound.spans);
    node.step = step;
    return node;
  }

  /** A step named by a block parameter that holds no layer or block (`act` with act = 3, or a misspelt layer). */
  private notALayer(step: A.LayerStep, value: Value): void {
    const misspelt = value.kind === 'layer' || (value.kind === 'name' && !OPTION_WORDS.has(value.name));
    const guess = misspelt ? closestName(value.name, [...layerNames, ...this.blocks.keys()]) : undefined;
    this.diags.push(diagnostic('notALayer', step.nameSpan, { name: step.name, value: showValue(value) }, {
      hint: guess ? `did you mean "${guess}"?` : `give ${step.name} a layer (${step.name}=relu, ${step.name}=leakyrelu(0.2)) or a block's name`,
    }));
  }

  /** Applies one layer kind to the flow; `args` null means its arguments were bad (already reported). */
  layer(kind: LayerKind, args: Args | null, flow: Flow, scope: Scope, path: string, span: Span, argSpans: Record<string, Span> = {}): LayerNode {
    const node: LayerNode = {
      kind: 'layer', layer: kind, args: args ?? {}, text: describeLayer(kind, args), path, span,
      input: flow.shape, output: null, rf: null, frozen: scope.frozen, params: [], macs: 0,
    };
    if (++this.layerCount > MAX_LAYERS) return this.tooLarge(span, flow), node;
    if (!args || !flow.shape || !flow.rf) return this.invalidate(flow), node;
    const input = flow.shape;
    try {
      const output = kind.shape(input, args, new LayerShapeContext(kind.name, span, argSpans, this.diags));
      if (!this.sizeCheck(output, span)) throw new ShapeFailure({ code: '', severity: 'error', message: '' });
      node.output = output;
      node.params = kind.params?.(input, args) ?? [];
      node.macs = kind.macs?.(input, output, args) ?? 0;
      node.window = kind.window?.(input, args);
      node.rf = this.receptive(flow.rf, kind, input, args, node.window);
    } catch (e) {
      if (!(e instanceof ShapeFailure)) throw e;
      if (e.diagnostic.code) {
        const { arg, ...d } = e.diagnostic;
        const diag = { ...d, span: (arg && argSpans[arg]) || span };
        this.diags.push(diag);
        node.error = diag;
      }
    }
    flow.shape = node.output;
    flow.rf = node.rf;
    return node;
  }

  /** The layer's own rule, else a global layer's (the whole input) or a sliding window's. */
  private receptive(rf: Receptive, kind: LayerKind, input: Shape, args: Args, w: LayerNode['window']): Receptive {
    if (kind.receptive) return kind.receptive(rf, input, args, this.inputExtent);
    if (kind.global) return { size: this.inputExtent, jump: rf.jump, global: true };
    return w ? windowReceptive(rf, w) : rf;
  }

  sizeCheck(shape: Shape, span: Span): boolean {
    const elements = product(shape);
    if (elements <= MAX_ELEMENTS) return true;
    this.diags.push(diagnostic('tensorTooLarge', span, { shape: formatShape(shape), elements: elements.toLocaleString('en-US') }));
    return false;
  }

  tooLarge(span: Span, flow: Flow): void {
    if (!this.overflowReported) this.diags.push(diagnostic('expansionTooLarge', span, { limit: MAX_LAYERS, what: 'layers' }));
    this.overflowReported = true;
    this.invalidate(flow);
  }

  overLimit(): boolean {
    return this.layerCount > MAX_LAYERS;
  }

  expansion(chain: A.Chain, env: Env): number {
    return this.sizes.chain(chain, env);
  }

  /** Whether a use of `size` steps fits in what is left of the layer limit; reported once when not. */
  fitsExpansion(size: number, use: string, span: Span): boolean {
    if (this.layerCount + size <= MAX_LAYERS) return true;
    if (!this.overflowReported) this.diags.push(diagnostic('useTooLarge', span, { use, size, limit: MAX_LAYERS }));
    this.overflowReported = true;
    return false;
  }

  invalidate(flow: Flow): void {
    flow.shape = null;
    flow.rf = null;
  }

  private call(block: A.BlockDecl, step: A.LayerStep, args: readonly AnyArg[], flow: Flow, scope: Scope): Node | undefined {
    if (this.recursive.has(block.name)) return this.invalidate(flow), undefined;
    if (scope.depth >= MAX_CALL_DEPTH) {
      this.diags.push(diagnostic('expansionTooLarge', step.span, { limit: MAX_CALL_DEPTH, what: 'nested block uses' }));
      return this.invalidate(flow), undefined;
    }
    const env = bindBlockArgs(block, args, step.span, scope.env, this.diags);
    if (!env) return this.invalidate(flow), undefined;
    if (!this.fitsExpansion(this.sizes.chain(block.body, env), step.name, step.nameSpan)) return this.invalidate(flow), undefined;
    const path = this.childPath(scope, block.name, step.label);
    const text = `${block.name}(${block.params.map((p) => showValue(env.get(p.name)!)).join(', ')})`;
    const first = this.diags.length;
    const node = this.chain(block.body, flow, this.subScope(scope, path, env), step.span, { kind: 'block', name: block.name, text });
    this.fromUse(first, step.span, text, isImported(block.span) && !isImported(step.span));
    return node;
  }

  /**
   * Diagnostics from `first` on, raised inside a block for this use of it, say so: `in use vgg(64)`,
   * at the use. For a use in the file checked of a block from an imported file (`atUse`), those in
   * that file move to the use instead, with their place there as related (`in convnext_head(-1)`):
   * the use's arguments and input are what the file can change, and the editor shows the file
   * checked; their fixes in the imported file are dropped (they would edit a file not checked).
   */
  private fromUse(first: number, use: Span, text: string, atUse: boolean): void {
    // In place: these were made while checking this use (nodes hold them as their errors too).
    const seen = new Set<Diagnostic>();
    for (let i = first; i < this.diags.length; i++) {
      const d = this.diags[i];
      if (seen.has(d) || (d.span.start >= use.start && d.span.end <= use.end)) continue; // at the use already
      seen.add(d);
      if (atUse && isImported(d.span)) {
        d.related = [{ span: d.span, message: `in ${text}` }, ...(d.related ?? [])];
        d.span = use;
        d.fixes = d.fixes?.filter((f) => !isImported(f.span));
        if (!d.fixes?.length) delete d.fixes;
      } else d.related = [...(d.related ?? []), useRelated(use, text)];
    }
  }

  private totals(root: SeqNode, m: A.ModelDecl): CheckedModel['totals'] {
    const sum: LayerSums = { trainable: 0, nonTrainable: 0, macs: 0, activations: 0 };
    for (const item of root.items) {
      // A step that came from the cache brings the same node, whose sums need no second walk.
      let part = this.cache?.sums.get(item);
      if (!part) {
        part = layerSums(item);
        this.cache?.sums.set(item, part);
      }
      sum.trainable += part.trainable;
      sum.nonTrainable += part.nonTrainable;
      sum.macs += part.macs;
      sum.activations += part.activations;
    }
    const { trainable, nonTrainable, macs, activations } = sum;
    if (trainable + nonTrainable > MAX_EXACT) {
      this.diags.push(diagnostic('paramsOverflow', m.nameSpan, { count: (trainable + nonTrainable).toExponential(3) }));
    }
    return { trainable, nonTrainable, macs, paramBytes: 4 * (trainable + nonTrainable), activationBytes: 4 * activations };
  }
}

function layerSums(node: Node): LayerSums {
  const sum: LayerSums = { trainable: 0, nonTrainable: 0, macs: 0, activations: 0 };
  for (const l of layers(node)) {
    for (const p of l.params) {
      const n = product(p.shape);
      if (p.trainable && !l.frozen) sum.trainable += n;
      else sum.nonTrainable += n;
    }
    sum.macs += l.macs;
    if (l.output) sum.activations += product(l.output);
  }
  return sum;
}

const sameList = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** A copy of a checked node whose path (and its descendants') starts with `from` instead of `to`. */
function withPath<N extends Node>(node: N, from: string, to: string): N {
  return { ...withChildren(node, (child) => withPath(child, from, to)), path: to + node.path.slice(from.length) };
}

/** What a layer's shape rule reports through: diagnostics at the layer, or at the argument named. A class, not closures: one is made per layer checked. */
class LayerShapeContext implements ShapeContext {
  constructor(readonly layer: string, private readonly span: Span, private readonly argSpans: Record<string, Span>, private readonly diags: Diagnostic[]) {}

  fail<K extends CatalogKey>(key: K, params: Parameters<typeof diagnostic<K>>[2], extras?: ShapeExtras): never {
    throw new ShapeFailure(this.make(key, params, extras));
  }

  warn<K extends CatalogKey>(key: K, params: Parameters<typeof diagnostic<K>>[2], extras?: ShapeExtras): void {
    const { arg: _arg, ...d } = this.make(key, params, extras);
    this.diags.push(d);
  }

  private make<K extends CatalogKey>(key: K, params: Parameters<typeof diagnostic<K>>[2], extras: ShapeExtras = {}) {
    const { arg, insertBefore, ...rest } = extras;
    const { span } = this;
    if (insertBefore) rest.fixes = [{ title: `insert ${insertBefore.replace(/ -> $/, '')}`, span: { start: span.start, end: span.start }, text: insertBefore }];
    return { ...diagnostic(key, (arg && this.argSpans[arg]) || span, params, rest), arg };
  }
}

/** `conv 64 3x3 stride=2 pad=same`: positional values, then options that differ from the default. */
export function describeLayer(kind: LayerKind, args: Args | null): string {
  if (!args) return kind.name;
  let text = kind.name;
  for (const spec of kind.args) {
    const v = args[spec.name];
    if (v === undefined) continue;
    if (spec.positional && spec.required) text += ' ' + (spec.type === 'kernel' ? (v as readonly number[]).join('x') : showArg(v));
    else if (!sameArg(v, spec.default)) text += spec.positional ? ' ' + showArg(v) : ` ${spec.name}=${showArg(v)}`;
  }
  return text;
}

function showArg(v: ArgValue): string {
  if (Array.isArray(v)) return v.every((x) => x === v[0]) ? String(v[0]) : v.length === 2 ? v.join('x') : `[${v.join(',')}]`;
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return String(v);
}

function sameArg(a: ArgValue, b: ArgValue | undefined): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}
