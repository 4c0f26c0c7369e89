/**
 * What must hold for every input, whatever it is: the fuzzer's properties. Each check returns the
 * failures it saw (a property name and a detail), so the quick test and the long run share them.
 */
import { isDeepStrictEqual } from 'node:util';
import { check, type CheckResult } from '../../src/index.ts';
import { format } from '../../src/compiler/format.ts';
import { DocumentChecker } from '../../src/compiler/incremental.ts';
import { summarize } from '../../src/compiler/summary.ts';
import { MAX_DIAGNOSTICS } from '../../src/compiler/diagnostics.ts';
import type { SourceSet } from '../../src/compiler/source.ts';
import { rng } from '../helpers/random.ts';

export interface Failure {
  property: string;
  detail: string;
}

/**
 * The time one check or format may take: 250 ms plus 50 ms per KB. Measured on the 2-core machine
 * (2026-12-03): median 0.5 ms, the slowest generated input under 10 KB about 60 ms; the bound
 * leaves room for a loaded machine while still catching anything super-linear.
 */
export function timeLimitMs(text: string): number {
  return 250 + 0.05 * text.length;
}

function timed<T>(f: () => T): { value?: T; error?: unknown; ms: number } {
  const t0 = performance.now();
  try {
    const value = f();
    return { value, ms: performance.now() - t0 };
  } catch (error) {
    return { error, ms: performance.now() - t0 };
  }
}

const describeError = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}\n${e.stack?.split('\n').slice(1, 4).join('\n')}` : String(e));

/** Whether a span lies in one text of the check: the file's, or (at that file's base) an imported file's. */
function inItsText({ start, end }: { start: number; end: number }, sources: SourceSet): boolean {
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end)) return false;
  const source = sources.of(start);
  return source.base <= start && end <= source.base + source.text.length;
}

/** check(): no exception, in time, every diagnostic well formed and inside its file's text, a capped count. */
export function checkProperties(text: string, slack = 1): { failures: Failure[]; result?: CheckResult } {
  const failures: Failure[] = [];
  const run = timed(() => check(text));
  if (run.error !== undefined) return { failures: [{ property: 'check throws', detail: describeError(run.error) }] };
  if (run.ms > timeLimitMs(text) * slack) failures.push({ property: 'check too slow', detail: `${run.ms.toFixed(0)} ms for ${text.length} characters` });
  const result = run.value!;
  for (const d of result.diagnostics) {
    if (!/^CNN\d{4}$/.test(d.code) || !d.message) failures.push({ property: 'diagnostic malformed', detail: JSON.stringify(d) });
    // Its range, its related places and its fixes' ranges alike.
    for (const span of [d.span, ...(d.related ?? []).map((r) => r.span), ...(d.fixes ?? []).map((f) => f.span)]) {
      if (inItsText(span, result.sources)) continue;
      const source = result.sources.of(span.start);
      failures.push({ property: 'diagnostic range outside the text', detail: `${d.code} ${span.start}-${span.end} in ${source.label} (${source.text.length} characters at ${source.base}): ${d.message}` });
    }
  }
  if (result.diagnostics.length > MAX_DIAGNOSTICS + 1) failures.push({ property: 'diagnostics not capped', detail: `${result.diagnostics.length}` });
  return { failures, result };
}

const hasSyntaxErrors = (r: CheckResult) => r.diagnostics.some((d) => d.code.startsWith('CNN1'));

/** What a summary says, without positions (formatting moves them). */
function summaryOf(r: CheckResult): unknown {
  return {
    models: r.models.map((m) => {
      const s = summarize(m);
      return { ...s, layers: s.layers.map(({ span, error, ...row }) => ({ ...row, error: error?.message })) };
    }),
    diagnostics: r.diagnostics.map((d) => `${d.code} ${d.message}`),
  };
}

/** format: total on files without syntax errors, idempotent, and the result checks the same. */
export function formatProperties(text: string, checked: CheckResult, slack = 1): Failure[] {
  const run = timed(() => format(text));
  if (run.error !== undefined) return [{ property: 'format throws', detail: describeError(run.error) }];
  const failures: Failure[] = [];
  if (run.ms > timeLimitMs(text) * slack) failures.push({ property: 'format too slow', detail: `${run.ms.toFixed(0)} ms for ${text.length} characters` });
  if (hasSyntaxErrors(checked)) return failures;
  const out = run.value;
  if (out == null) return [...failures, { property: 'format refuses a file without syntax errors', detail: '' }];
  const again = timed(() => format(out));
  if (again.value !== out) failures.push({ property: 'format not idempotent', detail: again.error !== undefined ? describeError(again.error) : JSON.stringify(again.value ?? null).slice(0, 200) });
  if (!isDeepStrictEqual(summaryOf(check(out)), summaryOf(checked))) failures.push({ property: 'formatted file checks differently', detail: JSON.stringify(out.slice(0, 200)) });
  return failures;
}

/** Small edits as a person types them: characters in, characters out, lines broken and joined. */
function randomEdit(text: string, next: () => number): string {
  const at = Math.floor(next() * (text.length + 1));
  const r = next();
  if (r < 0.45) return text.slice(0, at) + ' x2-> {}()#\n\r,:='[Math.floor(next() * 17)] + text.slice(at);
  if (r < 0.8) return text.slice(0, at) + text.slice(at + 1 + Math.floor(next() * 3));
  return text.slice(0, at) + ['\n', 'relu -> ', ' residual { ', ' }', 'conv 8 3x3'][Math.floor(next() * 5)] + text.slice(at);
}

/** The incremental checker equals a fresh check after every edit of a seeded edit sequence. */
export function incrementalProperties(text: string, seed: number, edits: number): Failure[] {
  const next = rng(seed);
  const doc = new DocumentChecker();
  let current = text;
  for (let i = 0; i <= edits; i++) {
    if (i > 0) current = randomEdit(current, next);
    const run = timed(() => doc.update(current));
    if (run.error !== undefined) return [{ property: 'incremental check throws', detail: `${describeError(run.error)}\nafter edit ${i}: ${JSON.stringify(current)}` }];
    const fresh = check(current);
    const got = run.value!;
    if (!isDeepStrictEqual(got.diagnostics, fresh.diagnostics) || !isDeepStrictEqual(got.models, fresh.models)) {
      return [{ property: 'incremental check differs from a fresh check', detail: `after edit ${i} (${doc.lastParse}): ${JSON.stringify(current).slice(0, 300)}` }];
    }
  }
  return [];
}
