/**
 * One fuzzing run: generated inputs through every property, failures minimised. Shared by the
 * quick test (test/fuzz.test.ts) and the long run (scripts/fuzz.ts).
 */
import { checkProperties, formatProperties, incrementalProperties, type Failure } from './properties.ts';
import { generator } from './generate.ts';

export interface Found extends Failure {
  input: string;
  how: string;
  minimal: string;
}

export interface RunOptions {
  count: number;
  seed: number;
  /** Every how-many-th input also goes through an incremental edit sequence. */
  incrementalEvery: number;
  /** Multiplies the time bounds (a loaded machine). */
  slack: number;
}

/** The failures of one input. A timing failure is measured again once: shared machines stall. */
export function failuresOf(text: string, seed: number, withIncremental: boolean, slack = 1): Failure[] {
  let { failures, result } = checkProperties(text, slack);
  if (failures.some((f) => f.property.endsWith('too slow'))) ({ failures, result } = checkProperties(text, slack));
  if (result) {
    let formatted = formatProperties(text, result, slack);
    if (formatted.some((f) => f.property.endsWith('too slow'))) formatted = formatProperties(text, result, slack);
    failures.push(...formatted);
  }
  if (withIncremental && !failures.some((f) => f.property === 'check throws')) failures.push(...incrementalProperties(text, seed, 12));
  return failures;
}

/** An in-process run (the quick test's): the failures found, the first five of each property minimised. */
export function fuzz(options: RunOptions): Found[] {
  const gen = generator(options.seed);
  const found: Found[] = [];
  for (let i = 0; i < options.count; i++) {
    const { text, how } = gen.next();
    for (const f of failuresOf(text, options.seed + i, i % options.incrementalEvery === 0, options.slack)) {
      const stillFails = (t: string) => failuresOf(t, options.seed + i, f.property.startsWith('incremental'), options.slack).some((g) => g.property === f.property);
      const minimal = found.filter((x) => x.property === f.property).length < 5 ? minimise(text, stillFails) : text;
      found.push({ ...f, input: text, how, minimal });
    }
  }
  return found;
}

/** The shortest text found by deleting chunks (halves, then smaller) while `fails` still holds. */
export function minimise(text: string, fails: (t: string) => boolean, budget = 400): string {
  let best = text;
  let tries = 0;
  for (let chunk = Math.max(1, best.length >> 1); chunk >= 1 && tries < budget; chunk >>= 1) {
    for (let at = 0; at < best.length && tries < budget; ) {
      const candidate = best.slice(0, at) + best.slice(at + chunk);
      tries++;
      if (candidate !== best && fails(candidate)) best = candidate;
      else at += chunk;
    }
  }
  return best;
}
