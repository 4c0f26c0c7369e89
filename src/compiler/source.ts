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

/** Maps offsets to lines and columns; built once per source text. */
export class LineMap {
  private readonly lineStarts: number[] = [0];

  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  position(offset: number): Position {
    const clamped = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= clamped) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: clamped - this.lineStarts[lo] };
  }

  offset(pos: Position): number {
    const start = this.lineStarts[Math.min(Math.max(pos.line, 0), this.lineStarts.length - 1)];
    return Math.min(start + pos.character, this.text.length);
  }

  lineText(line: number): string {
    const start = this.lineStarts[line] ?? this.text.length;
    const next = this.lineStarts[line + 1];
    return this.text.slice(start, next === undefined ? undefined : next - 1).replace(/\r$/, '');
  }

  get lineCount(): number {
    return this.lineStarts.length;
  }
}
