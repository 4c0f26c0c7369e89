/**
 * The open documents' texts, as TextDocuments keeps them, with each change made safe first.
 * TextDocument.update keeps its line table from the change's range as sent: a range past the
 * last line (which clients must not send, and a fuzzer does) leaves the table wrong for every
 * later edit, so that the server's text silently parts from the editor's. Each range is
 * therefore first clamped to the text, by the LSP's rules, and a change that is not one (no
 * text, a range that is not a range) is dropped rather than thrown on.
 */
import type { Position, Range, TextDocumentContentChangeEvent } from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';

/** A line or character as sent: non-negative integers stay, anything else becomes 0 (or the end, for +Infinity). */
function uint(v: unknown): number {
  if (typeof v !== 'number' || Number.isNaN(v) || v <= 0) return 0;
  return Number.isFinite(v) ? Math.floor(v) : Number.MAX_SAFE_INTEGER;
}

function clampPosition(doc: TextDocument, p: unknown): Position {
  const q = (p ?? {}) as { line?: unknown; character?: unknown };
  return doc.positionAt(doc.offsetAt({ line: uint(q.line), character: uint(q.character) }));
}

function clampRange(doc: TextDocument, r: unknown): Range {
  const q = r as { start?: unknown; end?: unknown };
  return { start: clampPosition(doc, q.start), end: clampPosition(doc, q.end) };
}

/** TextDocument.update, one change at a time, each range clamped to the text it applies to. */
export function updateDocument(doc: TextDocument, changes: TextDocumentContentChangeEvent[], version: number): TextDocument {
  for (const change of Array.isArray(changes) ? changes : []) {
    const c = change as { text?: unknown; range?: unknown };
    if (!c || typeof c.text !== 'string') continue;
    if (c.range !== undefined && (c.range === null || typeof c.range !== 'object')) continue;
    const safe: TextDocumentContentChangeEvent = c.range === undefined ? { text: c.text } : { range: clampRange(doc, c.range), text: c.text };
    doc = TextDocument.update(doc, [safe], version);
  }
  // the version even when every change was dropped: the client has it, and diagnostics name it
  return TextDocument.update(doc, [], version);
}

/** TextDocument.create, with a text that is a string. */
export function createDocument(uri: string, languageId: string, version: number, text: unknown): TextDocument {
  return TextDocument.create(uri, languageId, version, typeof text === 'string' ? text : '');
}
