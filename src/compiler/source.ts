import { basename } from 'node:path';

/** Source positions. Every AST node carries a span of offsets; line/column exist only at the edges (CLI, LSP). */
export interface Span {
  start: number; // offset of the first character
  end: number; // offset just past the last character
}

export interface Position {
  line: number; // 0-based
  character: number; // 0-based, in UTF-16 code units
}

export function spanOf(first: Span, last: Span): Span {
  return { start: first.start, end: last.end };
}

/*
 * Line breaks are "\n", "\r\n" and a lone "\r", as the LSP and editors count them; the lexer, the
 * formatter and the parser's recovery use the same rule through these helpers.
 */
const CR = 13;
const LF = 10;

/** Whether `s` holds a line break. */
export function hasLineBreak(s: string): boolean {
  return s.includes('\n') || s.includes('\r');
}

/** The offset where the line holding `offset` starts. */
export function lineStartOf(text: string, offset: number): number {
  if (offset <= 0) return 0;
  return Math.max(text.lastIndexOf('\n', offset - 1), text.lastIndexOf('\r', offset - 1)) + 1;
}

/** The offset of the first line break at or after `at` (text.length when none). */
export function lineEndOf(text: string, at: number): number {
  const lf = text.indexOf('\n', at);
  const cr = text.indexOf('\r', at);
  const first = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
  return first < 0 ? text.length : first;
}

/** The first line break at or after offsets that only move forward: linear in the text over a whole walk. */
export class NextLineBreak {
  private lf = -1;
  private cr = -1;

  constructor(private readonly text: string) {}

  /** The offset of the first line break at or after `from`; 2^32 - 1, past any offset, when none. */
  after(from: number): number {
    if (this.lf < from) this.lf = this.text.indexOf('\n', from) >>> 0;
    if (this.cr < from) this.cr = this.text.indexOf('\r', from) >>> 0;
    return Math.min(this.lf, this.cr);
  }
}

/**
 * Maps offsets to lines and columns, built once per text: the one conversion, for the command line
 * and the language server alike. Characters are UTF-16 code units, as in JavaScript and the LSP.
 */
export class LineMap {
  /** Offset of each line's first character. */
  private readonly lineStarts: number[] = [0];

  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === LF || (c === CR && text.charCodeAt(i + 1) !== LF)) this.lineStarts.push(i + 1);
    }
  }

  get lineCount(): number {
    return this.lineStarts.length;
  }

  /** The position of an offset (clamped into the text). */
  position(offset: number): Position {
    const clamped = Math.max(0, Math.min(Number.isFinite(offset) ? offset : 0, this.text.length));
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= clamped) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: clamped - this.lineStarts[lo] };
  }

  /**
   * The offset of a position, by the LSP's rules: a line past the last means the end of the text,
   * a character past the line's end means the line's end (never the next line).
   */
  offset(pos: Position): number {
    if (pos.line >= this.lineStarts.length) return this.text.length;
    if (pos.line < 0) return 0;
    const start = this.lineStarts[pos.line];
    return start + Math.max(0, Math.min(pos.character, this.contentEnd(pos.line) - start));
  }

  /** A line's text without its line end. */
  lineText(line: number): string {
    if (line < 0 || line >= this.lineStarts.length) return '';
    return this.text.slice(this.lineStarts[line], this.contentEnd(line));
  }

  /** The offset where a line's line end (if any) begins. */
  private contentEnd(line: number): number {
    const next = this.lineStarts[line + 1];
    if (next === undefined) return this.text.length;
    return this.text.charCodeAt(next - 1) === LF && this.text.charCodeAt(next - 2) === CR ? next - 2 : next - 1;
  }
}

/**
 * Offsets of imported files start here, one such stride apart: every span of a check, whichever
 * file it lies in, is an offset of one address space, as in a compiler's source map. The file
 * checked is at 0, so its spans are plain offsets into its text. Texts are far shorter than this.
 */
export const FILE_STRIDE = 2 ** 32;

/** Whether a span lies in a file the checked file imports (not in the checked file itself). */
export function isImported(span: Span): boolean {
  return span.start >= FILE_STRIDE;
}

/** One text of a check: the file checked (base 0) or a file it imports. */
export interface Source {
  /** As shown to people: the path as the command line gave it, or the import joined to it. */
  name: string;
  /**
   * Relative to the checked file's folder (its base name; `blocks.cnn`, `std/resnet.cnn`): for
   * what is generated from the file, which names its sources without the working folder.
   */
  label: string;
  /** The absolute path, for files read from disk (none for text that came without a file). */
  path?: string;
  text: string;
  base: number;
}

/** The texts of one check, each at its base in the one address space of spans (FILE_STRIDE). */
export class SourceSet {
  readonly sources: Source[];
  private readonly lineMaps = new Map<Source, LineMap>();

  constructor(name: string, text: string, path?: string) {
    this.sources = [{ name, label: basename(name), path, text, base: 0 }];
  }

  get main(): Source {
    return this.sources[0];
  }

  /** Adds an imported text at the next base. */
  add(name: string, label: string, path: string, text: string): Source {
    const source = { name, label, path, text, base: this.sources.length * FILE_STRIDE };
    this.sources.push(source);
    return source;
  }

  /** The source an offset lies in. */
  of(offset: number): Source {
    return this.sources[Math.max(0, Math.min(this.sources.length - 1, Math.floor(offset / FILE_STRIDE)))];
  }

  lines(source: Source): LineMap {
    let map = this.lineMaps.get(source);
    if (!map) this.lineMaps.set(source, (map = new LineMap(source.text)));
    return map;
  }

  /** An offset as a place in its own file. */
  locate(offset: number): { source: Source; position: Position } {
    const source = this.of(offset);
    return { source, position: this.lines(source).position(offset - source.base) };
  }
}

/** A source as the emitters take it: one file's text (a file without imports), or a check's texts. */
export type SourceInput = string | SourceSet;

/** `source` as a SourceSet; a text becomes the one file `name`. */
export function sourceSetOf(source: SourceInput, name: string): SourceSet {
  return typeof source === 'string' ? new SourceSet(name, source) : source;
}
