/**
 * Checks a request's params before any handler reads them: a client (or a fuzzer) may send
 * `null`, a missing `textDocument`, or a position whose line is a string, and each of these
 * should be answered with an InvalidParams error that says what is wrong, not a TypeError deep
 * in a handler.
 */

/** What a request needs besides `textDocument.uri`. */
export interface Needs {
  position?: boolean;
  range?: boolean;
  newName?: boolean;
  /** Answer documents over the size limit with an error, not an empty result (formatting: the user asked for an action). */
  refuseTooLarge?: boolean;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** LSP positions are uinteger pairs; anything else is not a position (huge values are fine: they clamp). */
const isUint = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;

function badPosition(v: unknown, what: string): string | undefined {
  if (!isObject(v)) return `${what} is not a position`;
  if (!isUint(v.line) || !isUint(v.character)) return `${what} needs non-negative integer line and character`;
  return undefined;
}

/** What is wrong with `params`, or undefined when they have what the request needs. */
export function badParams(params: unknown, needs: Needs): string | undefined {
  if (!isObject(params)) return 'params must be an object';
  const doc = params.textDocument;
  if (!isObject(doc) || typeof doc.uri !== 'string') return 'textDocument.uri must be a string';
  if (needs.position) {
    const bad = badPosition(params.position, 'position');
    if (bad) return bad;
  }
  if (needs.range) {
    if (!isObject(params.range)) return 'range is not a range';
    const bad = badPosition(params.range.start, 'range.start') ?? badPosition(params.range.end, 'range.end');
    if (bad) return bad;
  }
  if (needs.newName && typeof params.newName !== 'string') return 'newName must be a string';
  return undefined;
}
