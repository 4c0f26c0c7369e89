/**
 * Checked results of a model's top-level steps, kept between checks of the same (incrementally
 * re-parsed) syntax tree, so that an edit re-checks only what it changed. An entry is keyed by the
 * step's AST object and is reused only when everything the step's check reads is unchanged: the
 * flow into it, its frozen state, and the file's block declarations (the language server drops the
 * cache when a block changes); under another path (`residual12` now `residual13`) only when it
 * reported nothing, as a copy renamed. Only entries used by the latest check survive.
 */
import type * as A from './ast.ts';
import type { Diagnostic } from './diagnostics.ts';
import type { Node, Receptive } from './model.ts';
import type { Shape } from './layers/types.ts';
import { isImported, type Span } from './source.ts';

export interface FlowState {
  shape: Shape | null;
  rf: Receptive | null;
}

export interface CachedStep {
  /** The full path the step's node got (`residual12`), which the scope's counters must give again. */
  path: string;
  frozen: boolean;
  inputExtent: readonly [number, number];
  input: FlowState;
  output: FlowState;
  node: Node;
  /** Layers the step expanded to (for the model's layer limit). */
  layers: number;
  /** Diagnostics the step reported, with spans of their own (never shared with the AST). */
  diagnostics: Diagnostic[];
}

/** A node's totals over its layers. */
export interface LayerSums {
  trainable: number;
  nonTrainable: number;
  macs: number;
  activations: number;
}

const KEPT_PER_STEP = 2;

/** What a check reads and records (a StepCache, or a read-only view of one). */
export interface StepLookup {
  readonly sums: WeakMap<Node, LayerSums>;
  get(step: A.Step): readonly CachedStep[];
  keep(step: A.Step, entry: CachedStep): void;
  finish(): void;
}

export class StepCache implements StepLookup {
  /** Totals per checked node, for the nodes that come back from the cache. */
  readonly sums = new WeakMap<Node, LayerSums>();
  /** Per step, its latest checks, newest first (two: while a name is half typed, the steps after it see no shape). */
  private entries = new Map<A.Step, readonly CachedStep[]>();
  private next = new Map<A.Step, readonly CachedStep[]>();
  /** The entries (current and next) that hold diagnostics: the only ones an edit has to move. */
  private withDiagnostics = new Set<CachedStep>();
  private nextWithDiagnostics = new Set<CachedStep>();

  get(step: A.Step): readonly CachedStep[] {
    return this.entries.get(step) ?? [];
  }

  /** Records an entry used by the check in progress. */
  keep(step: A.Step, entry: CachedStep): void {
    const old = this.get(step);
    const list = old[0] === entry ? old : [entry, ...old.filter((e) => e !== entry)].slice(0, KEPT_PER_STEP);
    this.next.set(step, list);
    for (const e of list) if (e.diagnostics.length > 0) this.nextWithDiagnostics.add(e);
  }

  /** Ends a check: what it did not use is dropped. */
  finish(): void {
    this.entries = this.next;
    this.next = new Map();
    this.withDiagnostics = this.nextWithDiagnostics;
    this.nextWithDiagnostics = new Set();
  }

  /**
   * The entries for a check whose syntax tree is thrown away after it (a version broken past one
   * step): it reuses them but records nothing, so the entries of the version edits start from survive.
   */
  readOnly(): StepLookup {
    return { sums: this.sums, get: (step) => this.get(step), keep: () => {}, finish: () => {} };
  }

  clear(): void {
    this.entries.clear();
    this.next.clear();
    this.withDiagnostics.clear();
    this.nextWithDiagnostics.clear();
  }

  /** Moves the cached diagnostics' spans as the AST's moved (see moveSpan). */
  shift(from: number, delta: number): void {
    if (delta === 0) return;
    const move = (s: Span) => moveSpan(s, from, delta);
    for (const entry of this.withDiagnostics) {
      for (const d of entry.diagnostics) {
        move(d.span);
        for (const r of d.related ?? []) move(r.span);
        for (const f of d.fixes ?? []) move(f.span);
      }
    }
  }
}

/**
 * Moves a span for an edit that shifted the text from `from` on by `delta`: a span from there on
 * moves whole; one around `from` grows or shrinks at its end; one that ends at `from` does not
 * hold the edit, which was typed after it.
 */
export function moveSpan(s: Span, from: number, delta: number): void {
  if (isImported(s)) return; // in an imported file, which the edit did not touch
  if (s.start >= from) {
    s.start += delta;
    s.end += delta;
  } else if (s.end > from) s.end += delta;
}

/** Gives a recorded diagnostic span objects of its own, so that moving the AST cannot move it twice. */
export function ownSpans(d: Diagnostic): void {
  d.span = { ...d.span };
  if (d.related) d.related = d.related.map((r) => ({ ...r, span: { ...r.span } }));
  if (d.fixes) d.fixes = d.fixes.map((f) => ({ ...f, span: { ...f.span } }));
}

export function sameFlow(a: FlowState, b: FlowState): boolean {
  return sameList(a.shape, b.shape) && sameReceptive(a.rf, b.rf);
}

function sameReceptive(a: Receptive | null, b: Receptive | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return sameList(a.size, b.size) && sameList(a.jump, b.jump) && !!a.global === !!b.global;
}

function sameList(a: readonly number[] | null, b: readonly number[] | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
