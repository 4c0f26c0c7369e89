/**
 * One document's analysis: the check result, the line map, and an index from syntax (AST steps)
 * to the checked nodes they became. A layer written once in a block body becomes one checked
 * node per use, so the index maps a step to all of them. Built lazily, once per text version.
 */
import type * as A from '../compiler/ast.ts';
import { namesIn } from '../compiler/ast.ts';
import { children, seqRole, stepChains, stepExprs } from '../compiler/combinators/index.ts';
import type { Node, CheckedModel, LayerNode, SeqNode } from '../compiler/model.ts';
import type { Span } from '../compiler/source.ts';
import { format } from '../compiler/format.ts';
import { check, type CheckResult } from '../index.ts';
import { isImported, LineMap } from '../compiler/source.ts';
import { pathToFileURL } from 'node:url';
import type { Location } from 'vscode-languageserver';
import { toRange } from './convert.ts';

export type Decl = A.ModelDecl | A.BlockDecl;

/** A checked node together with the model it belongs to. */
export interface Use<N extends Node = Node> {
  node: N;
  model: CheckedModel;
}

export class Analysis {
  readonly lines: LineMap;
  readonly result: CheckResult;
  private indexCache: NodeIndex | undefined;
  private formattedCache: string | null | undefined;

  /** `result`: the text's check when the caller has it (the server's incremental one). */
  constructor(readonly text: string, readonly version = 0, result?: CheckResult) {
    this.lines = new LineMap(text);
    this.result = result ?? check(text);
  }

  get ast(): A.SourceFile {
    return this.result.ast;
  }

  get index(): NodeIndex {
    return (this.indexCache ??= new NodeIndex(this.result.models));
  }

  /** The formatted text (null with syntax errors), computed once per version: repeated format requests cost nothing. */
  get formatted(): string | null {
    if (this.formattedCache === undefined) this.formattedCache = format(this.text);
    return this.formattedCache;
  }

  offset(pos: { line: number; character: number }): number {
    return this.lines.offset(pos);
  }

  /** The document's blocks, then those it imports. */
  get blocks(): readonly A.BlockDecl[] {
    return this.result.imports.blocks.length ? [...this.ast.blocks, ...this.result.imports.blocks] : this.ast.blocks;
  }

  block(name: string): A.BlockDecl | undefined {
    return this.ast.blocks.find((b) => b.name === name) ?? this.result.imports.blocks.find((b) => b.name === name);
  }

  /** Whether a span lies in this document (not in a file it imports). */
  isOwn(span: Span): boolean {
    return !isImported(span);
  }

  /** Where a span lies: in this document (`uri`), or in a file it imports. */
  location(uri: string, span: Span): Location {
    const source = this.result.sources.of(span.start);
    if (this.isOwn(span) || !source.path) return { uri, range: toRange(this.lines, span) };
    const lines = this.result.sources.lines(source);
    const at = (offset: number) => lines.position(offset - source.base);
    return { uri: pathToFileURL(source.path).href, range: { start: at(span.start), end: at(span.end) } };
  }

  /** Every expansion of a block, through all the steps that use it. */
  blockUses(name: string): Use<SeqNode>[] {
    const uses: Use<SeqNode>[] = [];
    for (const { step } of allSteps(this.ast)) if (step.kind === 'layer' && step.name === name) uses.push(...this.index.callUses(step));
    return uses;
  }
}

const key = (kind: string, span: Span) => `${kind}:${span.start}:${span.end}`;

/** From source steps to checked nodes. */
export class NodeIndex {
  private readonly layers = new Map<A.LayerStep, Use<LayerNode>[]>();
  private readonly bySpan = new Map<string, Use[]>();

  constructor(models: readonly CheckedModel[]) {
    for (const model of models) this.visit(model.root, model, true);
  }

  private add(k: string, use: Use): void {
    const list = this.bySpan.get(k);
    if (list) list.push(use);
    else this.bySpan.set(k, [use]);
  }

  /** Indexes layers by their step, and the other nodes by their kind and span (a block use's as `call`, a sequence's by its role). */
  private visit(node: Node, model: CheckedModel, root = false): void {
    switch (node.kind) {
      case 'layer':
        if (node.step) {
          const list = this.layers.get(node.step);
          if (list) list.push({ node, model });
          else this.layers.set(node.step, [{ node, model }]);
        }
        return;
      case 'seq': {
        const role = seqRole(node);
        if (!root) this.add(key(role === 'block' ? 'call' : role, node.span), { node, model });
        break;
      }
      default:
        this.add(key(node.kind, node.span), { node, model });
    }
    for (const child of children(node)) this.visit(child, model);
  }

  /** Every checked use of a layer step (one per model use of its block). */
  layerUses(step: A.LayerStep): Use<LayerNode>[] {
    return this.layers.get(step) ?? [];
  }

  /** Every expansion of a block call step. */
  callUses(step: A.LayerStep): Use<SeqNode>[] {
    return (this.bySpan.get(key('call', step.span)) ?? []) as Use<SeqNode>[];
  }

  /** The checked nodes of a composite step (residual, concat, add, gate, repeat, frozen). */
  compositeUses(step: Exclude<A.Step, A.LayerStep>): Use[] {
    return this.bySpan.get(key(step.kind, step.span)) ?? [];
  }

  /** The checked nodes of any step: layers, block expansions or composites. */
  stepUses(step: A.Step): Use[] {
    if (step.kind !== 'layer') return this.compositeUses(step);
    const layers = this.layerUses(step);
    return layers.length ? layers : this.callUses(step);
  }
}

/** Every step of a chain, depth first, with its nesting (outermost first). */
export function* stepsOf(chain: A.Chain, parents: A.Step[] = []): Generator<{ step: A.Step; parents: A.Step[] }> {
  for (const step of chain.steps) {
    yield { step, parents };
    const inner = [...parents, step];
    for (const c of stepChains(step)) yield* stepsOf(c, inner);
  }
}

export function* declsOf(ast: A.SourceFile): Generator<Decl> {
  yield* ast.blocks;
  yield* ast.models;
}

/** Every step in the file with the declaration that holds it. */
export function* allSteps(ast: A.SourceFile): Generator<{ step: A.Step; decl: Decl; parents: A.Step[] }> {
  for (const decl of declsOf(ast)) for (const s of stepsOf(decl.body)) yield { ...s, decl };
}

export { namesIn };

export const contains = (span: Span, offset: number) => span.start <= offset && offset <= span.end;
export const inside = (span: Span, offset: number) => span.start <= offset && offset < span.end;

/** What the cursor is on. */
export type Target =
  | { kind: 'layer'; step: A.LayerStep; decl: Decl; arg?: A.Arg; onName: boolean }
  | { kind: 'composite'; step: Exclude<A.Step, A.LayerStep>; decl: Decl }
  | { kind: 'block'; decl: A.BlockDecl }
  | { kind: 'param'; block: A.BlockDecl; name: string; span: Span }
  | { kind: 'model'; decl: A.ModelDecl }
  | { kind: 'input'; decl: A.ModelDecl; arg?: A.Arg }
  | { kind: 'train'; decl: A.ModelDecl; entry?: A.TrainEntry; arg?: A.Arg };

/** The innermost thing at `offset` (a position just past a word still counts as on it). */
export function locate(ast: A.SourceFile, offset: number): Target | undefined {
  for (const block of ast.blocks) {
    if (!contains(block.span, offset)) continue;
    if (offset <= block.nameSpan.end) return { kind: 'block', decl: block }; // the keyword or the name
    const param = block.params.find((p) => contains(p.span, offset));
    if (param) return { kind: 'param', block, name: param.name, span: param.span };
    return locateInChain(ast, block.body, block, offset);
  }
  for (const model of ast.models) {
    if (!contains(model.span, offset)) continue;
    if (offset <= model.nameSpan.end) return { kind: 'model', decl: model };
    if (model.input && contains(model.input.span, offset)) {
      return { kind: 'input', decl: model, arg: model.input.args.find((a) => contains(a.span, offset)) };
    }
    if (model.train && contains(model.train.span, offset)) {
      const entry = model.train.entries.find((e) => contains(e.span, offset));
      return { kind: 'train', decl: model, entry, arg: entry?.values.find((a) => contains(a.span, offset)) };
    }
    return locateInChain(ast, model.body, model, offset);
  }
  return undefined;
}

function locateInChain(ast: A.SourceFile, chain: A.Chain, decl: Decl, offset: number): Target | undefined {
  let best: Target | undefined;
  for (const { step } of stepsOf(chain)) {
    if (!contains(step.span, offset)) continue;
    if (step.kind === 'layer') {
      if (decl.kind === 'block' && contains(step.nameSpan, offset) && decl.params.some((p) => p.name === step.name)) {
        return { kind: 'param', block: decl, name: step.name, span: step.nameSpan }; // `-> act`: a parameter holding a layer
      }
      const arg = step.args.find((a) => contains(a.span, offset));
      if (arg && decl.kind === 'block') {
        const name = [...namesIn(arg.value)].find((n) => contains(n.span, offset) && decl.params.some((p) => p.name === n.name));
        if (name) return { kind: 'param', block: decl, name: name.name, span: name.span };
      }
      if (arg?.name && arg.nameSpan && contains(arg.nameSpan, offset)) {
        const callee = ast.blocks.find((b) => b.name === step.name);
        const param = callee?.params.find((p) => p.name === arg.name);
        if (callee && param) return { kind: 'param', block: callee, name: param.name, span: arg.nameSpan };
      }
      best = { kind: 'layer', step, decl, arg, onName: contains(step.nameSpan, offset) || (!!step.label && contains(step.label.span, offset)) };
    } else {
      if (decl.kind === 'block') {
        const name = stepExprs(step).flatMap((e) => [...namesIn(e)]).find((n) => contains(n.span, offset) && decl.params.some((p) => p.name === n.name));
        if (name) return { kind: 'param', block: decl, name: name.name, span: name.span };
      }
      best = { kind: 'composite', step, decl };
    }
  }
  return best;
}
