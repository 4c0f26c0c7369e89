/**
 * Code actions: the fixes that diagnostics carry (insert flatten before dense, did-you-mean
 * renames, `residual project`), and padding fixes for shape mismatches in residual, concat and
 * add: set pad=same on a layer with valid padding inside, offered only when checking the edited
 * text shows that the mismatch is gone and no new error appears before it.
 */
import { CodeActionKind, type CodeAction, type Range, type TextEdit } from 'vscode-languageserver';
import type { Diagnostic } from '../compiler/diagnostics.ts';
import type * as A from '../compiler/ast.ts';
import { children } from '../compiler/combinators/index.ts';
import { layers, type Node } from '../compiler/model.ts';
import type { Span } from '../compiler/source.ts';
import { check } from '../index.ts';
import type { Analysis } from './analysis.ts';
import { toLspDiagnostic, toRange, toSpan } from './convert.ts';

const MISMATCH = new Set(['CNN3003', 'CNN3004', 'CNN3005']);
const MAX_CANDIDATES = 6;

const overlaps = (a: Span, b: Span) => a.start <= b.end && b.start <= a.end;

export function codeActions(analysis: Analysis, uri: string, range: Range): CodeAction[] {
  const wanted = toSpan(analysis.lines, range);
  const actions: CodeAction[] = [];
  for (const d of analysis.result.diagnostics) {
    if (!overlaps(d.span, wanted)) continue;
    const lspDiagnostic = toLspDiagnostic(analysis.lines, uri, d);
    for (const fix of d.fixes ?? []) {
      actions.push({
        title: fix.title,
        kind: CodeActionKind.QuickFix,
        diagnostics: [lspDiagnostic],
        isPreferred: d.fixes!.length === 1,
        edit: { changes: { [uri]: [{ range: toRange(analysis.lines, fix.span), newText: fix.text }] } },
      });
    }
    if (MISMATCH.has(d.code)) {
      for (const fix of paddingFixes(analysis, d)) {
        actions.push({ title: fix.title, kind: CodeActionKind.QuickFix, diagnostics: [lspDiagnostic], edit: { changes: { [uri]: fix.edits } } });
      }
    }
  }
  return actions;
}

interface Candidate {
  step: A.LayerStep;
  edit: { span: Span; text: string };
}

/** The checked node whose shape check produced this diagnostic. */
function nodeOf(analysis: Analysis, d: Diagnostic): Node | undefined {
  const visit = (n: Node): Node | undefined => {
    if (n.error === d) return n;
    for (const c of children(n)) {
      const f = visit(c);
      if (f) return f;
    }
    return undefined;
  };
  for (const m of analysis.result.models) {
    const found = visit(m.root);
    if (found) return found;
  }
  return undefined;
}

function padEdit(analysis: Analysis, step: A.LayerStep): Candidate['edit'] {
  const pad = step.args.find((a) => a.name === 'pad');
  if (pad) return { span: pad.value.span, text: 'same' };
  return { span: { start: step.span.end, end: step.span.end }, text: ' pad=same' };
}

function apply(text: string, edits: Candidate['edit'][]): string {
  let out = text;
  for (const e of [...edits].sort((a, b) => b.span.start - a.span.start)) out = out.slice(0, e.span.start) + e.text + out.slice(e.span.end);
  return out;
}

function paddingFixes(analysis: Analysis, d: Diagnostic): { title: string; edits: TextEdit[] }[] {
  const node = nodeOf(analysis, d);
  if (!node) return [];
  const steps: A.LayerStep[] = [];
  for (const l of layers(node)) {
    if (!l.step || !l.window || l.args.pad !== 'valid') continue;
    const shrinks = l.input && l.output && l.input.length === 3 && l.output.length === 3 && (l.input[1] !== l.output[1] || l.input[2] !== l.output[2]);
    if (shrinks && !steps.includes(l.step)) steps.push(l.step);
  }
  const candidates = steps.slice(0, MAX_CANDIDATES).map((step) => ({ step, edit: padEdit(analysis, step) }));
  const before = analysis.result.diagnostics;
  // Fixing a mismatch lets inference go on past it, which may show errors further down that were
  // hidden until now: those are allowed. Up to the mismatch itself, the edited text must have no
  // error that the original did not have, and the mismatch must be gone.
  const works = (edits: Candidate['edit'][]) => {
    const shift = (offset: number) => offset + edits.reduce((sum, e) => sum + (e.span.end <= offset ? e.text.length - (e.span.end - e.span.start) : 0), 0);
    const old = new Set(before.filter((x) => x.severity === 'error').map((x) => `${x.code}@${shift(x.span.start)}`));
    const limit = shift(Math.max(d.span.end, node.span.end));
    const after = check(apply(analysis.text, edits)).diagnostics.filter((x) => x.severity === 'error' && x.span.start <= limit);
    const at = shift(d.span.start);
    return !after.some((x) => MISMATCH.has(x.code) && x.span.start === at) && after.every((x) => old.has(`${x.code}@${x.span.start}`));
  };
  const fixes: { title: string; edits: TextEdit[] }[] = [];
  const where = (step: A.LayerStep) => `\`${analysis.text.slice(step.nameSpan.start, step.span.end).replace(/\s+/g, ' ')}\` (line ${analysis.lines.position(step.span.start).line + 1})`;
  for (const c of candidates) {
    if (works([c.edit])) fixes.push({ title: `set pad=same on ${where(c.step)} to make the shapes match`, edits: [{ range: toRange(analysis.lines, c.edit.span), newText: c.edit.text }] });
  }
  if (fixes.length === 0 && candidates.length > 1 && works(candidates.map((c) => c.edit))) {
    fixes.push({
      title: `set pad=same on the ${candidates.length} layers with valid padding inside to make the shapes match`,
      edits: candidates.map((c) => ({ range: toRange(analysis.lines, c.edit.span), newText: c.edit.text })),
    });
  }
  return fixes;
}
