/**
 * The language server: a thin layer that keeps the open documents, checks them (debounced per
 * document), and routes requests to the pure handlers beside this file. Every handler is wrapped:
 * an exception is logged to the client's console and answered with an empty result, so that no
 * request, document or text can stop the server.
 */
import {
  CodeActionKind,
  createConnection,
  ProposedFeatures,
  ResponseError,
  TextDocuments,
  TextDocumentSyncKind,
  type Connection,
  type InitializeResult,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { DocumentChecker } from '../compiler/incremental.ts';
import { codeActions } from './actions.ts';
import { Analysis } from './analysis.ts';
import { completion } from './completion.ts';
import { documentDiagnostics } from './diagnostics.ts';
import { formatDocument } from './formatting.ts';
import { hover } from './hover.ts';
import { inlayHints } from './inlay.ts';
import { definition, prepareRename, references, rename } from './navigation.ts';
import { documentSymbols, foldingRanges } from './outline.ts';
import { semanticLegend, semanticTokens } from './semantic.ts';

export const DEFAULT_DEBOUNCE_MS = 75;

/** Options a client may pass as `initializationOptions`. */
export interface CnncInitOptions {
  /** Delay between the last change and the diagnostics (default 75 ms). */
  debounceMs?: number;
}

export function startServer(connection: Connection): void {
  const documents = new TextDocuments(TextDocument);
  const analyses = new Map<string, Analysis>();
  /** Per document: checks each version incrementally from the last (which it then no longer keeps valid). */
  const checkers = new Map<string, DocumentChecker>();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  const published = new Map<string, number>();
  const lastPublish = new Map<string, number>();
  let debounceMs = DEFAULT_DEBOUNCE_MS;

  const logError = (what: string, e: unknown) => {
    connection.console.error(`cnnc lsp: ${what} failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  };

  /** The analysis of a document's current text, computed once per version. */
  const analysisOf = (uri: string): Analysis | undefined => {
    const doc = documents.get(uri);
    if (!doc) return undefined;
    const cached = analyses.get(uri);
    if (cached && cached.version === doc.version) return cached;
    let checker = checkers.get(uri);
    if (!checker) checkers.set(uri, (checker = new DocumentChecker(uri)));
    const text = doc.getText();
    const fresh = new Analysis(text, doc.version, checker.update(text));
    analyses.set(uri, fresh);
    return fresh;
  };

  const publish = (uri: string) => {
    clearTimeout(timers.get(uri));
    timers.delete(uri);
    try {
      const analysis = analysisOf(uri);
      if (!analysis || published.get(uri) === analysis.version) return;
      published.set(uri, analysis.version);
      lastPublish.set(uri, performance.now());
      void connection.sendDiagnostics({ uri, version: analysis.version, diagnostics: documentDiagnostics(analysis, uri) });
    } catch (e) {
      logError(`checking ${uri}`, e);
    }
  };

  documents.onDidOpen((e) => publish(e.document.uri));
  documents.onDidChangeContent((e) => {
    const uri = e.document.uri;
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
  });

  /** Wraps a request handler: closed documents and exceptions give the fallback (an empty result). */
  function handle<P extends { textDocument: { uri: string } }, R>(name: string, fallback: R, fn: (analysis: Analysis, params: P) => R) {
    return (params: P): R => {
      try {
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
    if (typeof options.debounceMs === 'number' && Number.isFinite(options.debounceMs) && options.debounceMs >= 0) debounceMs = options.debounceMs;
    return {
      capabilities: {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental },
        hoverProvider: true,
        completionProvider: { triggerCharacters: ['=', '>', '|', '{'] },
        definitionProvider: true,
        referencesProvider: true,
        renameProvider: { prepareProvider: true },
        documentSymbolProvider: true,
        foldingRangeProvider: true,
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
        documentFormattingProvider: true,
        inlayHintProvider: true,
        semanticTokensProvider: { legend: semanticLegend, full: true },
      },
      serverInfo: { name: 'cnnc' },
    };
  });

  connection.onHover(handle('hover', null, (a, p) => hover(a, p.position)));
  connection.onCompletion(handle('completion', [], (a, p) => completion(a, p.position)));
  connection.onDefinition(handle('definition', null, (a, p) => definition(a, p.textDocument.uri, p.position)));
  connection.onReferences(handle('references', [], (a, p) => references(a, p.textDocument.uri, p.position, p.context?.includeDeclaration ?? true)));
  connection.onPrepareRename(handle('prepareRename', null, (a, p) => prepareRename(a, p.position)));
  connection.onRenameRequest(handle('rename', null, (a, p) => rename(a, p.textDocument.uri, p.position, p.newName)));
  connection.onDocumentSymbol(handle('documentSymbol', [], (a) => documentSymbols(a)));
  connection.onFoldingRanges(handle('foldingRange', [], (a) => foldingRanges(a)));
  connection.onCodeAction(handle('codeAction', [], (a, p) => codeActions(a, p.textDocument.uri, p.range)));
  connection.onDocumentFormatting(handle('formatting', [], (a) => formatDocument(a)));
  connection.languages.inlayHint.on(handle('inlayHint', [], (a, p) => inlayHints(a, p.range)));
  connection.languages.semanticTokens.on(handle('semanticTokens', { data: [] }, (a) => semanticTokens(a)));

  documents.listen(connection);
  connection.listen();
}

/** `cnnc lsp --stdio`: the server over stdin/stdout; stray console output goes to the client's log, not into the protocol stream. */
export function runStdioServer(): void {
  const connection = createConnection(ProposedFeatures.all, process.stdin, process.stdout);
  console.log = (...args: unknown[]) => connection.console.log(args.map(String).join(' '));
  console.info = console.log;
  console.warn = (...args: unknown[]) => connection.console.warn(args.map(String).join(' '));
  console.error = (...args: unknown[]) => connection.console.error(args.map(String).join(' '));
  process.on('uncaughtException', (e) => connection.console.error(`cnnc lsp: uncaught: ${e.stack ?? e.message}`));
  process.on('unhandledRejection', (e) => connection.console.error(`cnnc lsp: unhandled rejection: ${String(e)}`));
  startServer(connection);
}
