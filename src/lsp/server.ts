/**
 * The language server: a thin layer that keeps the open documents, checks them (debounced per
 * document), and routes requests to the pure handlers beside this file. Every handler is wrapped:
 * malformed params are answered with an InvalidParams error, an exception is logged to the
 * client's console and answered with an empty result, so that no request, document or text can
 * stop the server. Documents over a size limit are not analysed at all (see `maxDocumentSize`).
 */
import {
  CodeActionKind,
  createConnection,
  ErrorCodes,
  LSPErrorCodes,
  ProposedFeatures,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  TextDocuments,
  TextDocumentSyncKind,
  DiagnosticSeverity,
  type Connection,
  type DataCallback,
  type Disposable,
  type InitializeResult,
  type Message,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { nodeHost, type ImportHost } from '../compiler/host.ts';
import { DocumentChecker } from '../compiler/incremental.ts';
import { codeActions } from './actions.ts';
import { Analysis } from './analysis.ts';
import { completion } from './completion.ts';
import { documentDiagnostics } from './diagnostics.ts';
import { createDocument, updateDocument } from './documents.ts';
import { formatDocument, formatRange } from './formatting.ts';
import { hover } from './hover.ts';
import { inlayHints } from './inlay.ts';
import { definition, documentHighlights, prepareRename, references, rename } from './navigation.ts';
import { documentSymbols, foldingRanges } from './outline.ts';
import { badParams, type Needs } from './params.ts';
import { semanticLegend, semanticTokens } from './semantic.ts';

export const DEFAULT_DEBOUNCE_MS = 75;
/**
 * Larger documents are not analysed: everything runs on the one thread that answers every
 * request, and a 1 MB model (20,000 lines) took 5.8 s to its first diagnostics, 6.4 s to format
 * and 840 MB after one edit (500 kB: 3.6 s, 2.4 s and 340 MB, on a busy 2-core machine). Real
 * models are a few kB (ResNet-50 is 3 kB); a 1,000-layer file is about 40 kB.
 */
export const DEFAULT_MAX_DOCUMENT_SIZE = 500_000;

/** Options a client may pass as `initializationOptions`. */
export interface CnncInitOptions {
  /** Delay between the last change and the diagnostics (default 75 ms). */
  debounceMs?: number;
  /** Documents longer than this (in UTF-16 code units, about bytes) get one warning and no analysis (default 500,000). */
  maxDocumentSize?: number;
}

const nonNegative = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

export function startServer(connection: Connection): void {
  const documents = new TextDocuments<TextDocument>({ create: createDocument, update: updateDocument });
  const analyses = new Map<string, Analysis>();
  /** Per document: checks each version incrementally from the last (which it then no longer keeps valid). */
  const checkers = new Map<string, DocumentChecker>();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  const published = new Map<string, number>();
  const lastPublish = new Map<string, number>();
  let debounceMs = DEFAULT_DEBOUNCE_MS;
  let maxDocumentSize = DEFAULT_MAX_DOCUMENT_SIZE;
  let snippets = false;
  let shutDown = false;

  const logError = (what: string, e: unknown) => {
    connection.console.error(`cnnc lsp: ${what} failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  };

  const tooLarge = (doc: TextDocument) => doc.getText().length > maxDocumentSize;
  const tooLargeMessage = (doc: TextDocument) =>
    `this document has ${doc.getText().length.toLocaleString('en-US')} characters: the language server analyses documents of up to ` +
    `${maxDocumentSize.toLocaleString('en-US')} (initialization option maxDocumentSize); \`cnnc check\` and \`cnnc fmt\` still work on it`;

  /** Imports read open documents as the editor has them, other files from disk. */
  const host: ImportHost = {
    read: (file) => documents.get(pathToFileURL(file).href)?.getText() ?? nodeHost.read(file),
    library: nodeHost.library,
  };
  /** A file's imports are relative to it; its diagnostics name imported files relative to it too. */
  const checkerFor = (uri: string) => {
    const file = filePath(uri);
    return new DocumentChecker(file ? path.basename(file) : uri, { path: file, host });
  };

  /**
   * A change to a document is a change to every open document that imports it: their analyses
   * are dropped and they are checked again (with their own debounce).
   */
  const recheckImporters = (uri: string) => {
    const file = filePath(uri);
    if (!file) return;
    for (const [other, analysis] of analyses) {
      if (other === uri || !analysis.result.sources.sources.some((s) => s.base > 0 && s.path === file)) continue;
      analyses.delete(other);
      published.delete(other);
      clearTimeout(timers.get(other));
      timers.set(other, setTimeout(() => publish(other), debounceMs));
    }
  };

  /** The analysis of a document's current text, computed once per version; none for documents over the size limit. */
  const analysisOf = (uri: string): Analysis | undefined => {
    const doc = documents.get(uri);
    if (!doc) return undefined;
    if (tooLarge(doc)) {
      analyses.delete(uri);
      checkers.delete(uri); // its incremental state is of no use once the text is this large
      return undefined;
    }
    const cached = analyses.get(uri);
    if (cached && cached.version === doc.version) return cached;
    let checker = checkers.get(uri);
    if (!checker) checkers.set(uri, (checker = checkerFor(uri)));
    const text = doc.getText();
    const fresh = new Analysis(text, doc.version, checker.update(text));
    analyses.set(uri, fresh);
    return fresh;
  };

  const publish = (uri: string) => {
    clearTimeout(timers.get(uri));
    timers.delete(uri);
    try {
      const doc = documents.get(uri);
      if (!doc || published.get(uri) === doc.version) return;
      const analysis = analysisOf(uri);
      published.set(uri, doc.version);
      lastPublish.set(uri, performance.now());
      const diagnostics = analysis
        ? documentDiagnostics(analysis, uri)
        : [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, severity: DiagnosticSeverity.Warning, source: 'cnnc', message: tooLargeMessage(doc) }];
      void connection.sendDiagnostics({ uri, version: doc.version, diagnostics });
    } catch (e) {
      logError(`checking ${uri}`, e);
    }
  };

  documents.onDidOpen((e) => {
    publish(e.document.uri);
    recheckImporters(e.document.uri);
  });
  documents.onDidChangeContent((e) => {
    const uri = e.document.uri;
    recheckImporters(uri);
    if (published.get(uri) === e.document.version) return; // the open itself, already published
    // Leading edge: a change after a quiet spell is checked at once (setImmediate still merges the
    // changes of one message batch); changes during a burst wait until it pauses for debounceMs.
    const quiet = !timers.has(uri) && performance.now() - (lastPublish.get(uri) ?? -Infinity) >= debounceMs;
    clearTimeout(timers.get(uri));
    timers.set(uri, setTimeout(() => publish(uri), quiet ? 0 : debounceMs));
  });
  documents.onDidClose((e) => {
    const uri = e.document.uri;
    clearTimeout(timers.get(uri));
    timers.delete(uri);
    analyses.delete(uri);
    checkers.delete(uri);
    published.delete(uri);
    lastPublish.delete(uri);
    void connection.sendDiagnostics({ uri, diagnostics: [] });
    recheckImporters(uri); // they read it from disk again
  });

  /**
   * Wraps a request handler. Params that do not have the shape the request needs are an
   * InvalidParams error; closed, never-opened and too-large documents give the fallback (an
   * empty result), except for formatting, which says why it did nothing; exceptions are logged
   * and give the fallback.
   */
  function handle<P extends { textDocument: { uri: string } }, R>(name: string, fallback: R, needs: Needs, fn: (analysis: Analysis, params: P) => R) {
    return (params: P): R => {
      if (shutDown) throw new ResponseError(ErrorCodes.InvalidRequest, `${name} after shutdown`);
      const bad = badParams(params, needs);
      if (bad) throw new ResponseError(ErrorCodes.InvalidParams, `${name}: ${bad}`);
      try {
        const doc = documents.get(params.textDocument.uri);
        if (doc && tooLarge(doc) && needs.refuseTooLarge) throw new ResponseError(LSPErrorCodes.RequestFailed, `${name}: ${tooLargeMessage(doc)}`);
        const analysis = analysisOf(params.textDocument.uri);
        return analysis ? fn(analysis, params) : fallback;
      } catch (e) {
        if (e instanceof ResponseError) throw e;
        logError(name, e);
        return fallback;
      }
    };
  }

  connection.onInitialize((params): InitializeResult => {
    const options = (params.initializationOptions ?? {}) as CnncInitOptions;
    if (nonNegative(options.debounceMs)) debounceMs = options.debounceMs;
    if (nonNegative(options.maxDocumentSize)) maxDocumentSize = options.maxDocumentSize;
    snippets = params.capabilities?.textDocument?.completion?.completionItem?.snippetSupport === true;
    return {
      capabilities: {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental },
        hoverProvider: true,
        completionProvider: { triggerCharacters: ['=', '>', '|', '{'] },
        definitionProvider: true,
        referencesProvider: true,
        documentHighlightProvider: true,
        renameProvider: { prepareProvider: true },
        documentSymbolProvider: true,
        foldingRangeProvider: true,
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
        documentFormattingProvider: true,
        documentRangeFormattingProvider: true,
        inlayHintProvider: true,
        semanticTokensProvider: { legend: semanticLegend, full: true },
      },
      serverInfo: { name: 'cnnc' },
    };
  });
  connection.onShutdown(() => {
    shutDown = true;
  });

  const at = { position: true } as const;
  connection.onHover(handle('hover', null, at, (a, p) => hover(a, p.position)));
  connection.onCompletion(handle('completion', [], at, (a, p) => completion(a, p.position, { snippets })));
  connection.onDefinition(handle('definition', null, at, (a, p) => definition(a, p.textDocument.uri, p.position)));
  connection.onReferences(handle('references', [], at, (a, p) => references(a, p.textDocument.uri, p.position, p.context?.includeDeclaration !== false)));
  connection.onDocumentHighlight(handle('documentHighlight', [], at, (a, p) => documentHighlights(a, p.position)));
  connection.onPrepareRename(handle('prepareRename', null, at, (a, p) => prepareRename(a, p.position)));
  connection.onRenameRequest(handle('rename', null, { position: true, newName: true }, (a, p) => rename(a, p.textDocument.uri, p.position, p.newName)));
  connection.onDocumentSymbol(handle('documentSymbol', [], {}, (a) => documentSymbols(a)));
  connection.onFoldingRanges(handle('foldingRange', [], {}, (a) => foldingRanges(a)));
  connection.onCodeAction(handle('codeAction', [], { range: true }, (a, p) => codeActions(a, p.textDocument.uri, p.range)));
  connection.onDocumentFormatting(handle('formatting', [], { refuseTooLarge: true }, (a) => formatDocument(a)));
  connection.onDocumentRangeFormatting(handle('rangeFormatting', [], { range: true, refuseTooLarge: true }, (a, p) => formatRange(a, p.range)));
  connection.languages.inlayHint.on(handle('inlayHint', [], { range: true }, (a, p) => inlayHints(a, p.range)));
  connection.languages.semanticTokens.on(handle('semanticTokens', { data: [] }, {}, (a) => semanticTokens(a)));

  documents.listen(connection);
  connection.listen();
}

/** The path of a file: URI; undefined for other schemes and for URIs that name no local file. */
function filePath(uri: string): string | undefined {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}

/**
 * Reads messages as they arrive and acts on `exit` there, ahead of any requests still queued:
 * the client that sends `exit` waits for the process to end (VS Code kills it after a few
 * seconds) and wants none of the queued answers. The exit code follows the LSP: 0 when a
 * `shutdown` request came first, 1 otherwise.
 */
class ExitFirstReader extends StreamMessageReader {
  shutdownSeen = false;

  override listen(callback: DataCallback): Disposable {
    return super.listen((message: Message) => {
      const method = (message as { method?: unknown }).method;
      if (method === 'shutdown') this.shutdownSeen = true;
      if (method === 'exit') process.exit(this.shutdownSeen ? 0 : 1);
      callback(message);
    });
  }
}

/** `cnnc lsp --stdio`: the server over stdin/stdout; stray console output goes to the client's log, not into the protocol stream. */
export function runStdioServer(): void {
  const reader = new ExitFirstReader(process.stdin);
  const connection = createConnection(ProposedFeatures.all, reader, new StreamMessageWriter(process.stdout));
  // Given a reader rather than the stream, the library no longer ends the process when stdin
  // closes (the client is gone): do it here, with the same exit code rule as `exit`.
  const gone = () => process.exit(reader.shutdownSeen ? 0 : 1);
  process.stdin.on('end', gone);
  process.stdin.on('close', gone);
  console.log = (...args: unknown[]) => connection.console.log(args.map(String).join(' '));
  console.info = console.log;
  console.warn = (...args: unknown[]) => connection.console.warn(args.map(String).join(' '));
  console.error = (...args: unknown[]) => connection.console.error(args.map(String).join(' '));
  process.on('uncaughtException', (e) => connection.console.error(`cnnc lsp: uncaught: ${e.stack ?? e.message}`));
  process.on('unhandledRejection', (e) => connection.console.error(`cnnc lsp: unhandled rejection: ${String(e)}`));
  startServer(connection);
}
