/** Go to definition, find references and rename, for blocks, models and block parameters. */
import { DocumentHighlightKind, ResponseError, ErrorCodes, type DocumentHighlight, type Location, type Position, type Range, type TextEdit, type WorkspaceEdit } from 'vscode-languageserver';
import type * as A from '../compiler/ast.ts';
import { lookupLayer } from '../compiler/layers/index.ts';
import * as T from '../compiler/lexer.ts';
import type { Span } from '../compiler/source.ts';
import { stepExprs } from '../compiler/combinators/index.ts';
import { allSteps, contains, locate, namesIn, stepsOf, type Analysis } from './analysis.ts';
import { toRange } from './convert.ts';

export type Symbol =
  | { kind: 'block'; name: string; decl: A.BlockDecl | undefined; at: Span }
  | { kind: 'param'; name: string; block: A.BlockDecl; at: Span }
  | { kind: 'model'; name: string; decl: A.ModelDecl; at: Span };

/** The renamable symbol under the cursor. */
export function symbolAt(analysis: Analysis, offset: number): Symbol | undefined {
  const target = locate(analysis.ast, offset);
  switch (target?.kind) {
    case 'block': return { kind: 'block', name: target.decl.name, decl: target.decl, at: target.decl.nameSpan };
    case 'param': return { kind: 'param', name: target.name, block: target.block, at: target.span };
    case 'model': return { kind: 'model', name: target.decl.name, decl: target.decl, at: target.decl.nameSpan };
    case 'layer': {
      const { step } = target;
      if (!contains(step.nameSpan, offset)) return undefined;
      const decl = analysis.block(step.name);
      return decl ? { kind: 'block', name: step.name, decl, at: step.nameSpan } : undefined;
    }
    default: return undefined;
  }
}

/** Where the symbol is declared. */
function declarationSpan(s: Symbol): Span | undefined {
  switch (s.kind) {
    case 'block': return s.decl?.nameSpan;
    case 'model': return s.decl.nameSpan;
    case 'param': return s.block.params.find((p) => p.name === s.name)?.span;
  }
}

/** Every occurrence, the declaration first. */
export function occurrences(analysis: Analysis, s: Symbol): Span[] {
  const spans: Span[] = [];
  const decl = declarationSpan(s);
  if (decl) spans.push(decl);
  if (s.kind === 'block') {
    for (const { step } of allSteps(analysis.ast)) if (step.kind === 'layer' && step.name === s.name) spans.push(step.nameSpan);
  } else if (s.kind === 'param') {
    for (const p of s.block.params) if (p.default) for (const n of namesIn(p.default)) if (n.name === s.name) spans.push(n.span);
    for (const { step } of stepsOf(s.block.body)) {
      if (step.kind === 'layer' && step.name === s.name) spans.push(step.nameSpan);
      for (const e of stepExprs(step)) for (const n of namesIn(e)) if (n.name === s.name) spans.push(n.span);
    }
    // named arguments in calls: bottleneck(c=64)
    for (const { step } of allSteps(analysis.ast)) {
      if (step.kind !== 'layer' || step.name !== s.block.name) continue;
      for (const a of step.args) if (a.name === s.name && a.nameSpan) spans.push(a.nameSpan);
    }
  }
  const seen = new Set<string>();
  return spans.filter((sp) => {
    const k = `${sp.start}:${sp.end}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The declaration, in this document or in a file it imports. */
export function definition(analysis: Analysis, uri: string, position: Position): Location | null {
  const s = symbolAt(analysis, analysis.offset(position));
  const decl = s && declarationSpan(s);
  return decl ? analysis.location(uri, decl) : null;
}

export function references(analysis: Analysis, uri: string, position: Position, includeDeclaration: boolean): Location[] {
  const s = symbolAt(analysis, analysis.offset(position));
  if (!s) return [];
  const decl = declarationSpan(s);
  return occurrences(analysis, s)
    .filter((sp) => includeDeclaration || !decl || sp.start !== decl.start)
    .map((sp) => analysis.location(uri, sp));
}

/** Every occurrence of the symbol under the cursor, its declaration marked as written. */
export function documentHighlights(analysis: Analysis, position: Position): DocumentHighlight[] {
  const s = symbolAt(analysis, analysis.offset(position));
  if (!s) return [];
  const decl = declarationSpan(s);
  return occurrences(analysis, s).filter((sp) => analysis.isOwn(sp)).map((sp) => ({
    range: toRange(analysis.lines, sp),
    kind: decl && sp.start === decl.start ? DocumentHighlightKind.Write : DocumentHighlightKind.Read,
  }));
}

export function prepareRename(analysis: Analysis, position: Position): { range: Range; placeholder: string } | null {
  const s = symbolAt(analysis, analysis.offset(position));
  if (s) refuseImported(analysis, s);
  return s ? { range: toRange(analysis.lines, s.at), placeholder: s.name } : null;
}

/** A block of an imported file is renamed there: its other users are out of this document's reach. */
function refuseImported(analysis: Analysis, s: Symbol): void {
  const decl = declarationSpan(s);
  if (decl && !analysis.isOwn(decl)) {
    const file = analysis.result.sources.of(decl.start).name;
    throw new ResponseError(ErrorCodes.InvalidRequest, `${s.name} is declared in ${file}: rename it there`);
  }
}

const keywordNames = new Set(T.keywords.map((k) => String(k.PATTERN).replace(/^\/|\/$/g, '')));

export function rename(analysis: Analysis, uri: string, position: Position, newName: string): WorkspaceEdit {
  const s = symbolAt(analysis, analysis.offset(position));
  if (!s) throw new ResponseError(ErrorCodes.InvalidRequest, 'nothing to rename here: put the cursor on a block, a model or a block parameter');
  refuseImported(analysis, s);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(newName) || keywordNames.has(newName)) {
    throw new ResponseError(ErrorCodes.InvalidParams, `"${newName}" is not a valid name`);
  }
  if (newName !== s.name) {
    if (s.kind === 'block' && (lookupLayer(newName) || analysis.block(newName))) {
      throw new ResponseError(ErrorCodes.InvalidParams, `"${newName}" is already ${lookupLayer(newName) ? 'a layer kind' : 'a block'}`);
    }
    if (s.kind === 'param' && s.block.params.some((p) => p.name === newName)) {
      throw new ResponseError(ErrorCodes.InvalidParams, `block ${s.block.name} already has a parameter "${newName}"`);
    }
    if (s.kind === 'model' && analysis.ast.models.some((m) => m.name === newName)) {
      throw new ResponseError(ErrorCodes.InvalidParams, `there is already a model "${newName}"`);
    }
  }
  const edits: TextEdit[] = occurrences(analysis, s).map((sp) => ({ range: toRange(analysis.lines, sp), newText: newName }));
  return { changes: { [uri]: edits } };
}
