/**
 * Checking the successive versions of one document (the language server's path). When an edit
 * stays inside one step of a model's or block's chain, only that step is parsed again and spliced
 * into the previous syntax tree, whose later offsets are moved in place; the checker then reuses
 * every top-level step whose input did not change (step-cache.ts). An edit that leaves a syntax
 * error inside that step is parsed the same way, with recovery in the context the whole file's
 * parse would give it (parser.ts, parseStepsRecovering); one whose error reaches past that step
 * (a stray `{`) parses the file again from that step on (parseRestRecovering), keeping what comes
 * before. Any other edit takes the full path; the result always equals `check(text)` (tested on
 * random edits, broken ones included).
 */
import { tokenMatcher, type IToken } from 'chevrotain';
import type * as A from './ast.ts';
import { combinatorOf } from './combinators/index.ts';
import { Arrow, cnnLexer, LBrace, RBrace } from './lexer.ts';
import { parse, parseRestRecovering, parseStepsRecovering, type ParseResult } from './parser.ts';
import { bracesLeftOpen, closeOpenBodies, virtualBraces, type ClosedBody } from './recovery.ts';
import { catalog, type Diagnostic } from './diagnostics.ts';
import { ImportCache, resolveImports } from './imports.ts';
import { nodeHost } from './host.ts';
import { moveSpan, StepCache, type StepLookup } from './step-cache.ts';
import { lineEndOf, lineStartOf, type Span } from './source.ts';
import { checkResolved, sourcesOf, type CheckOptions, type CheckResult } from '../index.ts';

/**
 * The version later ones are parsed from: one whose syntax errors, if any, each lie inside one
 * step of a chain (a full parse with errors elsewhere never becomes the base).
 */
interface BaseVersion {
  text: string;
  ast: A.SourceFile;
  /** The syntax errors of each step that has any, with spans of their own. */
  syntax: Map<A.Step, Diagnostic[]>;
  /** Steps where recovery left nodes without tokens, whose spans sit at the end of the text. */
  endAnchored: Set<A.Step>;
}

export class DocumentChecker {
  private base: BaseVersion | undefined;
  private readonly cache = new StepCache();
  /** How the latest update parsed: 'full', 'step' (steps re-parsed), 'rest' (the file from a step on) or 'trivia' (no token changed). */
  lastParse: 'full' | 'step' | 'trivia' | 'rest' = 'full';

  /** The imported blocks the cache's checks were made with: other blocks make them stale. */
  private imported: readonly A.BlockDecl[] = [];
  private readonly importCache = new ImportCache();

  constructor(private readonly file = '<input>', private readonly options: CheckOptions = {}) {}

  /**
   * The check of `text`, parsed from the base version when the edit since then lies inside a
   * chain (only its steps, or the file from them on) or only in spaces and comments; otherwise
   * parsed whole. The base's tree is moved in place: a result must not be used after the next update.
   */
  update(text: string): CheckResult {
    const reused = this.base && this.reparse(this.base, text);
    let parsed: ParseResult;
    let cache: StepLookup | undefined = this.cache;
    if (reused) ({ parsed, cache } = reused);
    else {
      this.lastParse = 'full';
      parsed = parse(text);
      if (parsed.diagnostics.length === 0) {
        this.cache.clear();
        this.base = { text, ast: parsed.ast, syntax: new Map(), endAnchored: new Set() };
      } else cache = undefined; // checked on its own: the base and the cache stay as they were
    }
    const sources = sourcesOf(this.file, text, this.options);
    const imports = resolveImports(parsed.ast, sources, this.options.host ?? nodeHost, this.importCache);
    if (!sameList(imports.blocks, this.imported)) this.cache.clear();
    this.imported = imports.blocks;
    return checkResolved(parsed, sources, imports, cache);
  }

  /** `text` parsed from the base version, with the cache its check may use; undefined when the edit needs a full parse. */
  private reparse(base: BaseVersion, text: string): { parsed: ParseResult; cache: StepLookup | undefined } | undefined {
    const edit = changedRange(base.text, text);
    const site = editSite(base.ast, edit.start, edit.oldEnd);
    if (!site) {
      const parsed = this.retrivia(base, text, edit);
      return parsed && { parsed, cache: this.cache };
    }
    // The steps the edit touches; failing that, with a neighbour on each side, so that an error
    // at the arrow next to the edit (`relu - -> bn`, `-> -> bn`) falls inside the re-parse.
    const { first, last } = site;
    const wider = { first: Math.max(0, first - 1), last: Math.min(site.chain.steps.length - 1, last + 1) };
    const parsed = this.resplice(base, text, edit, site, first, last)
      ?? (wider.first !== first || wider.last !== last ? this.resplice(base, text, edit, site, wider.first, wider.last) : undefined);
    return parsed ? { parsed, cache: this.cache } : this.reparseRest(base, text, edit, site);
  }

  /**
   * An edit whose syntax error carries the parse past the steps it touches (a stray `{` takes the
   * rest of the chain with it): the file is parsed again from the first of those steps on, and the
   * steps and declarations before it are the base's. The result is no base (its errors are not
   * inside steps), so the base is left as it was and the check only reads the cache, which holds
   * for the kept steps while no block can have changed.
   */
  private reparseRest(base: BaseVersion, text: string, edit: Edit, site: Site): { parsed: ParseResult; cache: StepLookup | undefined } | undefined {
    const { owner, chain, first } = site;
    const from = chain.steps[first].span.start;
    if (edit.start < from) return undefined;
    // The re-parse puts a "->" before its first step: the text must have one there (parser.ts reports a missing one).
    if (first > 0 && !arrowBetween(text, chain.steps[first - 1].span.end, from)) return undefined;
    // The base's syntax errors before `from` stay; steps before it whose recovered nodes sit at the end of the text would move.
    const keptErrors = [...base.syntax.values()].flat().filter((d) => d.span.start < from).sort((a, b) => a.span.start - b.span.start);
    if (keptErrors.some((d) => d.span.end > from || d.fixes?.some((f) => f.span.end > from)) || [...base.endAnchored].some((step) => step.span.start < from)) return undefined;
    const tail = tokensFrom(text, from, base.syntax.size > 0);
    if (!tail || !sameClosings(tail.closedBefore, unclosed([keptErrors]).map((d) => moved(d, from, 0)))) return undefined;
    const { tokens, opened } = tail;
    const rest = parseRestRecovering(tokens, text, owner.kind, first === 0);
    const restOwner = rest && (owner.kind === 'model' ? rest.ast.models[0] : rest.ast.blocks[0]);
    if (!rest || !restOwner || restOwner.body.steps.length === 0) return undefined;
    if (keptErrors.length + opened.length + rest.diagnostics.length > MAX_INCREMENTAL_ERRORS) return undefined;
    this.lastParse = 'rest';
    const body: A.Chain = {
      steps: [...chain.steps.slice(0, first), ...restOwner.body.steps],
      span: { start: first > 0 ? chain.span.start : restOwner.body.span.start, end: restOwner.body.span.end },
    };
    const span = { start: owner.span.start, end: restOwner.span.end };
    const joined: A.ModelDecl | A.BlockDecl = owner.kind === 'model'
      ? { ...owner, body, span, train: (restOwner as A.ModelDecl).train }
      : { ...owner, body, span };
    const before = <D extends A.ModelDecl | A.BlockDecl>(list: D[]) => list.filter((d) => d.span.end <= owner.span.start);
    const ast: A.SourceFile = {
      imports: [...base.ast.imports.filter((i) => i.span.end <= owner.span.start), ...rest.ast.imports],
      models: [...before(base.ast.models), ...(joined.kind === 'model' ? [joined] : []), ...rest.ast.models.slice(owner.kind === 'model' ? 1 : 0)],
      blocks: [...before(base.ast.blocks), ...(joined.kind === 'block' ? [joined] : []), ...rest.ast.blocks.slice(owner.kind === 'block' ? 1 : 0)],
      span: { start: 0, end: text.length },
    };
    // Cached checks read the file's blocks: they hold while every block lies before the edit.
    const blocksKept = owner.kind === 'model' && rest.ast.blocks.length === 0 && base.ast.blocks.every((b) => b.span.end <= from);
    const diagnostics = [...keptErrors, ...opened.map((c) => c.diagnostic), ...rest.diagnostics];
    return { parsed: { ast, diagnostics }, cache: blocksKept ? this.cache.readOnly() : undefined };
  }

  /** An edit outside every chain, in spaces or comments only: the same tokens, moved. */
  private retrivia(base: BaseVersion, text: string, edit: Edit): ParseResult | undefined {
    const relexed = relex(base.text, text, edit.start, edit.oldEnd, edit.delta);
    if (!relexed || relexed.tokens.length > 0 || relexed.replaced > 0) return undefined;
    // Indentation decides where a body left open ends (recovery.ts, closeOpenBodies): unless the base
    // is clean (so its braces match), check that the bodies closed are still the base's.
    const open = unclosed(base.syntax.values());
    if (base.syntax.size > 0 && !sameClosings(closings(text)?.closed, open.map((d) => moved(d, edit.oldEnd, edit.delta)))) return undefined;
    this.lastParse = 'trivia';
    this.move(base, edit.oldEnd, edit.delta, new Set(), text.length);
    return this.rebase(base, text);
  }

  /** Steps first..last of the site's chain, with the edit, parsed again and spliced in. */
  private resplice(base: BaseVersion, text: string, edit: Edit, site: Site, first: number, last: number): ParseResult | undefined {
    const { syntax } = base;
    const { chain, owner } = site;
    const { delta } = edit;
    const old = chain.steps.slice(first, last + 1);
    const from = Math.min(edit.start, old[0].span.start);
    const oldTo = Math.max(edit.oldEnd, old[old.length - 1].span.end);
    // An old error at the arrows after the last of these steps would fall outside the re-parse.
    if (old.some((step) => syntax.get(step)?.some((d) => d.span.start >= oldTo))) return undefined;
    const relexed = relex(base.text, text, from, oldTo, delta);
    if (!relexed) return undefined;
    // Bodies left open (recovery.ts, closeOpenBodies) are closed by looking at the whole file: unless
    // the base is clean (its braces match) and the edit keeps its braces, the re-parsed steps must
    // close the bodies that the whole file's parse closes there, and no others may move.
    let tokens = relexed.tokens;
    let opened: ClosedBody[] = [];
    const open = unclosed([...syntax].filter(([step]) => !old.includes(step)).map(([, d]) => d));
    if (syntax.size > 0 || relexed.oldBraces !== braces(tokens)) {
      const all = closings(text)?.closed;
      const newTo = oldTo + delta;
      const inside = (c: ClosedBody) => c.brace.startOffset >= from && c.brace.startOffset < newTo;
      if (!all || !sameClosings(all.filter((c) => !inside(c)), open.map((d) => moved(d, oldTo, delta)))) return undefined;
      opened = all.filter(inside);
      const withVirtual = withClosings(tokens, opened);
      if (!withVirtual) return undefined;
      tokens = withVirtual;
    }
    const reparsed = reparseSteps(tokens, text, owner.kind, first === 0, opened);
    if (!reparsed) return undefined;
    // The re-parse puts a "->" before its first step and sees none after its last: the text must
    // agree at both edges, where a missing "->" is reported only by the whole file's parse.
    const next = chain.steps[last + 1];
    if (first > 0 && !arrowBetween(text, chain.steps[first - 1].span.end, reparsed.steps[0].span.start)) return undefined;
    if (next && !arrowBetween(text, reparsed.steps[reparsed.steps.length - 1].span.end, next.span.start + delta)) return undefined;
    const errorsElsewhere = [...syntax].reduce((n, [step, d]) => n + (old.includes(step) ? 0 : d.length), 0);
    if (errorsElsewhere + reparsed.diagnostics.length > MAX_INCREMENTAL_ERRORS) return undefined;
    this.lastParse = 'step';
    // A neighbour before the edit, re-parsed for context, comes back as it was (same text, same
    // place): keep its old object, and with it its cached check.
    const steps = [...reparsed.steps];
    const kept = old[0];
    if (steps.length > 1 && kept.span.end <= edit.start && !syntax.has(kept) && !base.endAnchored.has(kept) && !reparsed.byStep.has(steps[0])
      && steps[0].span.start === kept.span.start && steps[0].span.end === kept.span.end
      && text.slice(kept.span.start, kept.span.end) === base.text.slice(kept.span.start, kept.span.end)) {
      steps[0] = kept;
    }
    chain.steps.splice(first, old.length, ...steps);
    for (const step of old) {
      syntax.delete(step);
      base.endAnchored.delete(step);
    }
    this.move(base, oldTo, delta, new Set(steps.filter((step) => !old.includes(step))), text.length);
    for (const [step, diagnostics] of reparsed.byStep) syntax.set(step, diagnostics);
    for (const step of reparsed.endAnchored) base.endAnchored.add(step);
    // The chain's edges are its first and last steps' (which the new steps may have moved).
    if (first === 0) chain.span.start = steps[0].span.start;
    if (first + steps.length === chain.steps.length) chain.span.end = steps[steps.length - 1].span.end;
    // A block's body feeds every use of the block: the cached checks of models are stale.
    if (owner.kind === 'block') this.cache.clear();
    return this.rebase(base, text);
  }

  /** Moves the base's tree, its syntax errors and the cached checks for an edit (moveSpan). */
  private move(base: BaseVersion, from: number, delta: number, skip: ReadonlySet<A.Step>, length: number): void {
    const oldLength = length - delta;
    const atEnd = [...base.endAnchored].flatMap((step) => spansAt(step, oldLength)).map((span) => ({ span, whole: span.start === oldLength }));
    moveSpans(base.ast, from, delta, skip);
    for (const [step, diagnostics] of base.syntax) {
      if (skip.has(step)) continue;
      for (const d of diagnostics) {
        moveSpan(d.span, from, delta);
        for (const f of d.fixes ?? []) moveSpan(f.span, from, delta);
      }
    }
    for (const { span, whole } of atEnd) {
      span.end = length;
      if (whole) span.start = length;
    }
    this.cache.shift(from, delta);
  }

  private rebase(base: BaseVersion, text: string): ParseResult {
    base.text = text;
    base.ast.span = { start: 0, end: text.length };
    const diagnostics = [...base.syntax.values()].flat().sort((a, b) => a.span.start - b.span.start);
    return { ast: base.ast, diagnostics };
  }
}

/** The spans in a step that end at `offset` (the end of the text). */
function spansAt(value: unknown, offset: number, found: Span[] = []): Span[] {
  if (typeof value !== 'object' || value === null) return found;
  const record = value as Record<string, unknown>;
  if (typeof record.start === 'number' && typeof record.end === 'number') {
    if (record.end === offset) found.push(record as unknown as Span);
  } else for (const v of Object.values(record)) spansAt(v, offset, found);
  return found;
}

/** The braces among `tokens`, in order (`{}{`): the same sequence everywhere leaves the same braces matched. */
function braces(tokens: readonly IToken[]): string {
  let out = '';
  for (const t of tokens) if (t.tokenType === LBrace || t.tokenType === RBrace) out += t.image;
  return out;
}

/** The whole text's bodies left open, as the full parse closes them; undefined when the text does not lex. */
function closings(text: string): { tokens: IToken[]; closed: ClosedBody[] } | undefined {
  if (lastClosings?.text !== text) {
    const tokens = lexWhole(text);
    lastClosings = { text, result: tokens && closeOpenBodies(tokens, text) };
  }
  return lastClosings.result;
}
/** The latest closings: one update may ask for them up to three times (steps, wider steps, the rest of the file). */
let lastClosings: { text: string; result: ReturnType<typeof closeOpenBodies> | undefined } | undefined;

/**
 * The tokens of the whole text, re-lexing only the lines around what changed since the text
 * lexed last (relex), the other tokens kept (moved, after it); undefined when it does not lex.
 */
function lexWhole(text: string): IToken[] | undefined {
  const previous = lastLexed;
  let tokens: IToken[] | undefined;
  const edit = previous && changedRange(previous.text, text);
  // Whole lines: no token crosses their edges (block comments make relex give up).
  const start = edit ? lineStartOf(previous.text, edit.start) : 0;
  const end = edit ? lineEndOf(previous.text, edit.oldEnd) : 0;
  // (Another document's text, or a large change: lexed whole.)
  const relexed = previous && edit && end - start < text.length / 2 ? relex(previous.text, text, start, end, edit.delta) : undefined;
  if (previous && edit && relexed) {
    // Moved in place: nothing holds the previous text's tokens past the update that lexed them.
    const old = previous.tokens;
    let head = 0;
    while (head < old.length && old[head].startOffset < start) head++;
    let tail = head;
    while (tail < old.length && old[tail].startOffset < end) tail++;
    for (let i = tail; i < old.length; i++) {
      old[i].startOffset += edit.delta;
      old[i].endOffset! += edit.delta;
    }
    tokens = old.slice(0, head).concat(relexed.tokens, old.slice(tail));
  } else {
    const lexed = cnnLexer.tokenize(text);
    if (lexed.errors.length === 0) tokens = lexed.tokens;
  }
  lastLexed = tokens && { text, tokens };
  return tokens;
}
let lastLexed: { text: string; tokens: IToken[] } | undefined;


const isUnclosed = (d: Diagnostic) => d.code === catalog.unclosedBody.code;
const unclosed = (lists: Iterable<Diagnostic[]>) => [...lists].flat().filter(isUnclosed);

/** Where an unclosed body's `{` and its virtual `}` are: the diagnostic's span and its fix's. */
interface Closing { brace: number; close: number }

/** A base diagnostic's closing, as it stands after an edit that moved the text from `from` on by `delta`. */
function moved(d: Diagnostic, from: number, delta: number): Closing {
  const at = (offset: number) => (offset >= from ? offset + delta : offset);
  return { brace: at(d.span.start), close: at(d.fixes![0].span.start) };
}

function sameClosings(found: readonly ClosedBody[] | undefined, expected: Closing[]): boolean {
  if (!found || found.length !== expected.length) return false;
  const key = (c: Closing) => `${c.brace}:${c.close}`;
  const want = new Set(expected.map(key));
  return found.every((c) => want.has(key({ brace: c.brace.startOffset, close: c.close.startOffset })));
}

/** `tokens` (re-lexed steps) with the virtual `}` of each of `opened` after the token it follows; undefined when one has no such token. */
function withClosings(tokens: IToken[], opened: ClosedBody[]): IToken[] | undefined {
  const out = [...tokens];
  for (const c of opened) {
    const at = out.findIndex((t) => !virtualBraces.has(t) && t.endOffset! + 1 === c.close.startOffset);
    if (at < 0) return undefined;
    let after = at + 1;
    while (after < out.length && virtualBraces.has(out[after])) after++;
    out.splice(after, 0, c.close);
  }
  return out;
}

/**
 * The whole file's tokens from `from` (where the base has a step start) on, as the full parse
 * reads them: with the bodies it closes (closeOpenBodies), those that open from `from` on in
 * `opened` and those before it in `closedBefore`. Only the rest is lexed when no body can be left
 * open (the base is clean, so every brace before `from` is matched, and so are the rest's); the
 * whole file otherwise.
 * Undefined when the text does not lex, or its last token before `from` grows into the edit.
 */
function tokensFrom(text: string, from: number, baseBroken: boolean): { tokens: IToken[]; opened: ClosedBody[]; closedBefore: ClosedBody[] } | undefined {
  // The last token before `from` must not grow into the edit (`1xx28` after `input 1`: a number runs into it).
  if (!/[\s{>|([,]/.test(text[from - 1] ?? ' ')) return undefined;
  const rest = lexAt(text.slice(from), from);
  if (!rest) return undefined;
  // Inside the owner's braces at `from`: a body is left open when the rest never gets back out.
  if (!baseBroken && bracesLeftOpen(rest, 1) === 0) return { tokens: rest, opened: [], closedBefore: [] };
  const all = closings(text);
  if (!all) return undefined;
  const start = all.tokens.findIndex((t) => t.startOffset >= from && !virtualBraces.has(t));
  if (start < 0 || (start > 0 && all.tokens[start - 1].endOffset! >= from)) return undefined;
  const opened = all.closed.filter((c) => c.brace.startOffset >= from);
  return { tokens: all.tokens.slice(start), opened, closedBefore: all.closed.filter((c) => !opened.includes(c)) };
}

/** The tokens of `text`, a slice of the file starting at `offset`, at their places in the file; undefined when it does not lex. */
function lexAt(text: string, offset: number): IToken[] | undefined {
  const lexed = cnnLexer.tokenize(text);
  if (lexed.errors.length > 0) return undefined;
  if (offset > 0) {
    for (const t of lexed.tokens) {
      t.startOffset += offset;
      t.endOffset! += offset;
    }
  }
  return lexed.tokens;
}

/** Past this many syntax errors the full parse reports them (and says how many it leaves out). */
const MAX_INCREMENTAL_ERRORS = 50;

/**
 * The steps that `tokens` (the text of the old steps the edit touched) now make, parsed with
 * recovery where they stand, when every token lies inside one of them (but the arrows between)
 * and so does every syntax error (or at an arrow after one): the parse around them is then the
 * whole file's, unchanged.
 */
function reparseSteps(tokens: IToken[], text: string, owner: 'model' | 'block', first: boolean, opened: ClosedBody[]) {
  const recovered = parseStepsRecovering(tokens, text, owner, first);
  if (!recovered || recovered.steps.length === 0) return undefined;
  const { steps } = recovered;
  // As parse() lists them: the unclosed bodies' diagnostics, then the parser's.
  const diagnostics = [...opened.map((c) => c.diagnostic), ...recovered.diagnostics];
  // Recovery gives nodes with no tokens a span at the end of the text (and their parents a span
  // that ends there), kept there as the text changes.
  const endAnchored = steps.filter((s) => spansAt(s, text.length).length > 0);
  const inside = (offset: number) => steps.find((s) => s.span.start <= offset && offset < s.span.end);
  // Between the steps, arrows (more than one where recovery dropped an empty step); every other token inside a step.
  const between = (t: IToken) => tokenMatcher(t, Arrow) && steps.some((s, k) => k + 1 < steps.length && s.span.end <= t.startOffset && t.startOffset < steps[k + 1].span.start);
  if (!tokens.every((t) => virtualBraces.has(t) || inside(t.startOffset) || between(t))) return undefined;
  // An error at an arrow (`relu - -> bn`: the expression ends at the arrow) belongs to the step before it.
  const owning = (offset: number) => inside(offset) ?? [...steps].reverse().find((s) => s.span.end <= offset);
  const byStep = new Map<A.Step, Diagnostic[]>();
  for (const d of diagnostics) {
    const step = owning(d.span.start);
    if (!step) return undefined;
    byStep.set(step, [...(byStep.get(step) ?? []), d]);
  }
  return { steps, diagnostics, byStep, endAnchored };
}

/** Whether the text between two steps holds a "->" (else only spaces and comments). */
function arrowBetween(text: string, from: number, to: number): boolean {
  return from <= to && cnnLexer.tokenize(text.slice(from, to)).tokens.some((t) => tokenMatcher(t, Arrow));
}

/** The smallest range that differs: old text [start, oldEnd) became new text [start, oldEnd + delta). */
interface Edit {
  start: number;
  oldEnd: number;
  delta: number;
}

function changedRange(before: string, after: string): Edit {
  const limit = Math.min(before.length, after.length);
  // Binary searches over native slice comparisons: far faster than a loop over characters.
  const longest = (same: (n: number) => boolean, max: number) => {
    let lo = 0;
    let hi = max;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (same(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const start = longest((n) => before.slice(0, n) === after.slice(0, n), limit);
  const suffix = longest((n) => before.slice(before.length - n) === after.slice(after.length - n), limit - start);
  return { start, oldEnd: before.length - suffix, delta: after.length - before.length };
}

interface Site {
  owner: A.ModelDecl | A.BlockDecl;
  chain: A.Chain;
  /** The steps the edit touches, or sits between. */
  first: number;
  last: number;
}

/**
 * Where an edit of the old range [start, end) falls in a chain: the steps it touches (from the
 * last one starting at or before it to the first one ending at or after it; text typed beside
 * them and the arrows between belong to them). Undefined when it is not between a model's input
 * line (or the first step) and its train section (or closing brace).
 */
function editSite(ast: A.SourceFile, start: number, end: number): Site | undefined {
  for (const owner of [...ast.models, ...ast.blocks]) {
    if (start < owner.span.start || end > owner.span.end) continue;
    const chain = owner.body;
    const steps = chain.steps;
    // Edits must stay after the input line, or (no input line: a block's parameters and `{`) at or after the first step.
    const opening = owner.kind === 'model' && owner.input ? owner.input.span.end : steps[0]?.span.start - 1;
    const closing = owner.kind === 'model' && owner.train ? owner.train.span.start : owner.span.end - 1;
    if (steps.length === 0 || start <= opening || end > closing) return undefined;
    let first = 0;
    while (first + 1 < steps.length && steps[first + 1].span.start <= start) first++;
    let last = steps.length - 1;
    while (last > first && steps[last - 1].span.end >= end) last--;
    return { owner, chain, first, last };
  }
  return undefined;
}

/**
 * The new text's tokens in [from, oldTo + delta) and how many old ones they replace, when the tokens outside that range are the old
 * ones (the later ones moved by `delta`) and none crosses its edges; otherwise undefined. Only the
 * whole lines around the range are lexed, in both texts: tokens never span lines, except block
 * comments, so a region holding any block-comment delimiter is left to the full parse. So is one
 * holding a `//`, which may read otherwise inside a bracket opened on an earlier line (lexer.ts), and
 * an edit that changes brackets while a `//` follows it (it may turn that from comment to division or back).
 */
function relex(before: string, after: string, from: number, oldTo: number, delta: number): { tokens: IToken[]; replaced: number; oldBraces: string } | undefined {
  const lineStart = lineStartOf(before, from);
  const oldRegion = before.slice(lineStart, lineEndOf(before, oldTo));
  const newRegion = after.slice(lineStart, lineEndOf(after, oldTo + delta));
  if (/\/\*|\*\/|\/\//.test(oldRegion) || /\/\*|\*\/|\/\//.test(newRegion)) return undefined;
  const oldLexed = cnnLexer.tokenize(oldRegion);
  const newLexed = cnnLexer.tokenize(newRegion);
  if (oldLexed.errors.length > 0 || newLexed.errors.length > 0) return undefined;
  const oldTokens = oldLexed.tokens;
  const newTokens = newLexed.tokens;
  // Offsets within the regions.
  const head = from - lineStart;
  const oldTail = oldTo - lineStart;
  const newTail = oldTail + delta;
  const crosses = (tokens: IToken[], at: number) => tokens.some((t) => t.startOffset < at && t.endOffset! + 1 > at);
  if (crosses(oldTokens, head) || crosses(oldTokens, oldTail) || crosses(newTokens, head) || crosses(newTokens, newTail)) return undefined;
  const oldHead = countBefore(oldTokens, head);
  const newHead = countBefore(newTokens, head);
  const oldAfter = oldTokens.length - countBefore(oldTokens, oldTail);
  const newAfter = newTokens.length - countBefore(newTokens, newTail);
  if (oldHead !== newHead || oldAfter !== newAfter) return undefined;
  for (let i = 0; i < oldHead; i++) if (oldTokens[i].image !== newTokens[i].image) return undefined;
  for (let i = 1; i <= oldAfter; i++) {
    const a = oldTokens[oldTokens.length - i];
    const b = newTokens[newTokens.length - i];
    if (a.image !== b.image || a.startOffset + delta !== b.startOffset) return undefined;
  }
  const window = newTokens.slice(newHead, newTokens.length - newAfter);
  const replaced = oldTokens.slice(oldHead, oldTokens.length - oldAfter);
  if (brackets(replaced) !== brackets(window) && after.includes('//', lineStart + newRegion.length)) return undefined;
  for (const t of window) {
    t.startOffset += lineStart;
    t.endOffset! += lineStart;
  }
  return { tokens: window, replaced: replaced.length, oldBraces: braces(replaced) };
}

const BRACKETS = new Set(['(', ')', '[', ']', '{', '}']);
const brackets = (tokens: readonly IToken[]) => tokens.filter((t) => BRACKETS.has(t.image)).map((t) => t.image).join('');

/** How many tokens start before `offset` (tokens are in order). */
function countBefore(tokens: IToken[], offset: number): number {
  let n = 0;
  while (n < tokens.length && tokens[n].startOffset < offset) n++;
  return n;
}

/**
 * Moves the syntax tree's spans (moveSpan), in place, skipping the new steps (already at their
 * place) and every node that ends before `from`. Each span object is moved once: a clean tree
 * (the only kind this path takes) has one span object per node; only recovery shares them.
 */
function moveSpans(ast: A.SourceFile, from: number, delta: number, skip: ReadonlySet<A.Step>): void {
  if (delta === 0) return;
  const move = (span: Span | undefined) => span && moveSpan(span, from, delta);
  const expr = (e: A.Expr): void => {
    if (e.span.end < from) return;
    move(e.span);
    switch (e.kind) {
      case 'list': e.items.forEach(expr); break;
      case 'negate': expr(e.operand); break;
      case 'binary': move(e.opSpan); expr(e.left); expr(e.right); break;
      case 'call': move(e.calleeSpan); args(e.args); break;
    }
  };
  const args = (list: readonly A.Arg[]) => {
    for (const a of list) {
      if (a.span.end < from) continue;
      move(a.span);
      move(a.nameSpan);
      expr(a.value);
    }
  };
  const chain = (c: A.Chain): void => {
    if (c.span.end < from) return;
    move(c.span);
    for (const s of c.steps) step(s);
  };
  const step = (s: A.Step): void => {
    if (skip.has(s) || s.span.end < from) return;
    move(s.span);
    move(s.label?.span);
    if (s.kind === 'layer') {
      move(s.nameSpan);
      args(s.args);
      return;
    }
    const c = combinatorOf(s);
    move(s.keywordSpan);
    args(c.stepArgs(s));
    c.exprs(s).forEach(expr);
    c.chains(s).forEach(chain);
  };
  for (const i of ast.imports) {
    if (i.span.end < from) continue;
    move(i.span);
    move(i.targetSpan);
  }
  for (const b of ast.blocks) {
    if (b.span.end < from) continue;
    move(b.span);
    move(b.nameSpan);
    b.params.forEach((p) => {
      move(p.span);
      if (p.default) expr(p.default);
    });
    chain(b.body);
  }
  for (const m of ast.models) {
    if (m.span.end < from) continue;
    move(m.span);
    move(m.nameSpan);
    if (m.input) {
      move(m.input.span);
      if (m.input.dims) expr(m.input.dims);
      args(m.input.args);
    }
    chain(m.body);
    if (m.train) {
      move(m.train.span);
      for (const e of m.train.entries) {
        move(e.span);
        move(e.keySpan);
        args(e.values);
      }
    }
  }
}

const sameList = <T>(a: readonly T[], b: readonly T[]) => a.length === b.length && a.every((x, i) => x === b[i]);
