/**
 * Random traffic for the language server: the real `cnnc lsp --stdio` process, driven over stdio
 * by a seeded sequence of opens, full and incremental changes and closes, every request the
 * server offers at random and out-of-range positions, malformed params, unknown methods,
 * cancellations, requests for closed and never-opened documents, plus fixed scenarios that once
 * broke it (a 5 MB document, 1,000 edits sent without a pause, nested repeats of 10,000, lone
 * `\r` line ends). It records every request's answer time, each published diagnostics' ranges
 * against the text of the version they belong to, the ranges in answers against the text the
 * request saw, and the server's resident memory. test/lsp-fuzz.test.ts runs a short sequence;
 * `npm run fuzz:lsp -- --count N --seed S` a long one.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CancellationTokenSource,
  createMessageConnection,
  ExitNotification,
  InitializeRequest,
  InitializedNotification,
  PublishDiagnosticsNotification,
  ResponseError,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  type InitializeResult,
  type MessageConnection,
  type PublishDiagnosticsParams,
  type TextDocumentContentChangeEvent,
} from 'vscode-languageserver-protocol/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { prng } from '../src/compiler/emit/init.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

export interface FuzzOptions {
  seed: number;
  /** Random actions after the fixed scenarios. */
  count: number;
  /** How long one request may take to be answered. */
  requestTimeoutMs?: number;
  onProgress?: (done: number) => void;
  /** Called with every open, change (with the resulting text) and close, to replay a run outside the server. */
  onDocument?: (event: 'open' | 'change' | 'close', uri: string, version: number, text: string, changes?: TextDocumentContentChangeEvent[]) => void;
  /** Called as each fixed scenario starts (for a long run's progress line). */
  onScenario?: (name: string) => void;
}

export interface FuzzReport {
  seed: number;
  actions: number;
  requests: number;
  /** Answers by kind: results, and errors by code (e.g. -32602 InvalidParams, -32800 cancelled). */
  answers: Record<string, number>;
  notifications: number;
  diagnosticsChecked: number;
  /** Every broken promise: a request not answered in time, a range outside its text, an exit, ... */
  failures: string[];
  rssMB: { afterInit: number; max: number; end: number };
  /** Answer times by method, in ms. */
  latency: Record<string, { n: number; p50: number; p95: number; max: number }>;
  exitCode: number | null;
  exitMs: number;
  wallMs: number;
}

class Random {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  float(): number {
    return this.next();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

/** The example models, and texts that once broke the server or come close. */
function corpus(): string[] {
  const dir = path.join(root, 'examples');
  const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.cnn'));
  const examples = files.sort().map((f) => readFileSync(path.join(dir, f), 'utf8'));
  return [
    ...examples,
    '',
    'model m { input 1x8x8 repeat 10000 { repeat 10000 { foo } } }',
    'block b(c) { conv c 3x3 pad=same -> relu }\nmodel M {\n  input 3x16x16\n  fc: dense 10\n}\n',
    'model M {\r  input 3x8x8\r  conv 8 3x3 -> reluu\r}\r',
    'model M {\r\n  input 3x8x8\r\n  conv 8 3x3 pad=same -> relu\r\n  -> flatten -> dense 2\r\n}\r\n',
    'model {{{ ]] -> ->\u0000 é "unterminated\n block (( residual project { | | } 3x3x3x3x3 1e999 /* open',
    'model 😀 {\n  input 3x8x8 # ünïcödé 😀\n  conv 8 3x3 -> relu\n}\n',
    'block a(x) { b(x) }\nblock b(x) { a(x) }\nmodel M { input 3x8x8 a(1) }\n',
    'model M {\n  input 3x32x32\n  residual { conv 16 3x3 -> relu\n  -> dense 10\n}\n',
    // Empty branches, repeat 0 and split: bodies that pass their input.
    'model M {\n  input 4x8x8\n  split { | conv 2 1x1 } -> concat { |\n    conv 4 3x3 pad=same\n  |\n  } -> repeat 0 { relu } -> add { | }\n}\n',
  ];
}

/** Pieces that edits insert: tokens, broken tokens, line ends of every kind, odd characters. */
const INSERTS = [
  'conv 8 3x3', ' -> ', 'relu', '{', '}', '\n', '\r', '\r\n', 'residual {', ' | ', 'repeat 3 {', 'repeat 10000 {', 'repeat 0 {', 'split {', 'split [2, 6] { |', 'concat { | ', '| }',
  'pad=same', 'stride=2', '# note', '/*', '*/', '"', 'é', '😀', '\ud83d', '\u0000', '\t', 'dense 10', 'cbr(64)', 'fc: ',
  'model N {\n  input 3x8x8\n', 'block q(c) { conv c 1x1 }\n', 'train {\n  loss: cross_entropy\n}\n', '-', '=', '(', ')', ',', '1e999', '0x',
];

/** The client's view of one document, and the texts of its versions (to check what the server says about each). */
interface Doc {
  uri: string;
  doc: TextDocument | undefined;
  /** Strictly increasing over reopenings, so that a version names one text. */
  nextVersion: number;
  texts: Map<number, string>;
}

type Pending = { method: string; sent: number; promise: Promise<unknown> };

export class LspFuzzer {
  private readonly rnd: Random;
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly conn: MessageConnection;
  private readonly docs: Doc[];
  private readonly texts = corpus();
  private readonly pending: Pending[] = [];
  private readonly latencies = new Map<string, number[]>();
  private capabilities: InitializeResult['capabilities'] | undefined;
  readonly report: FuzzReport;
  private exitCode: number | null = null;
  private readonly timeoutMs: number;

  constructor(private readonly options: FuzzOptions) {
    this.rnd = new Random(options.seed);
    this.timeoutMs = options.requestTimeoutMs ?? 20_000;
    this.docs = Array.from({ length: 6 }, (_, i) => ({ uri: `file:///fuzz/doc${i}.cnn`, doc: undefined, nextVersion: 1, texts: new Map() }));
    this.report = {
      seed: options.seed, actions: 0, requests: 0, answers: {}, notifications: 0, diagnosticsChecked: 0, failures: [],
      rssMB: { afterInit: 0, max: 0, end: 0 }, latency: {}, exitCode: null, exitMs: 0, wallMs: 0,
    };
    this.proc = spawn(process.execPath, ['bin/cnnc.js', 'lsp', '--stdio'], { cwd: root, stdio: 'pipe' });
    this.proc.on('exit', (code) => {
      this.exitCode = code;
      this.report.exitCode = code;
    });
    this.proc.stderr.on('data', () => undefined); // drained, so that a chatty server cannot block on a full pipe
    this.conn = createMessageConnection(new StreamMessageReader(this.proc.stdout), new StreamMessageWriter(this.proc.stdin));
    this.conn.onNotification(PublishDiagnosticsNotification.type, (p) => this.checkDiagnostics(p));
    this.conn.onNotification('window/logMessage', () => undefined);
    this.conn.onError(() => undefined);
    this.conn.listen();
  }

  private fail(message: string): void {
    if (this.report.failures.length < 200) this.report.failures.push(message);
  }

  /** The server's resident set size, from /proc (Linux); 0 where there is none. */
  rssMB(): number {
    try {
      const status = readFileSync(`/proc/${this.proc.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      return Math.round(kb / 1024);
    } catch {
      return 0;
    }
  }

  private sampleMemory(): void {
    this.report.rssMB.max = Math.max(this.report.rssMB.max, this.rssMB());
  }

  async run(): Promise<FuzzReport> {
    const start = performance.now();
    await this.initialize();
    await this.scenarios();
    for (let i = 0; i < this.options.count; i++) {
      await this.step();
      this.options.onProgress?.(i + 1);
    }
    await this.drain();
    await this.finalDiagnostics();
    this.report.rssMB.end = this.rssMB();
    this.sampleMemory();
    await this.shutdown();
    this.report.wallMs = Math.round(performance.now() - start);
    this.report.latency = this.latencySummary();
    return this.report;
  }

  private async initialize(): Promise<void> {
    const init = await this.conn.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: null,
      capabilities: { textDocument: { completion: { completionItem: { snippetSupport: this.rnd.chance(0.5) } } } },
      initializationOptions: { debounceMs: this.rnd.pick([0, 5, 20]) },
    });
    this.capabilities = init.capabilities;
    void this.conn.sendNotification(InitializedNotification.type, {});
    this.report.rssMB.afterInit = this.rssMB();
  }

  // ---- documents -------------------------------------------------------------------------

  private open(d: Doc, text: string): void {
    const version = d.nextVersion++;
    d.doc = TextDocument.create(d.uri, 'cnn', version, text);
    this.remember(d, version, text);
    this.options.onDocument?.('open', d.uri, version, text);
    this.notify('textDocument/didOpen', { textDocument: { uri: d.uri, languageId: 'cnn', version, text } });
  }

  private close(d: Doc): void {
    d.doc = undefined;
    this.options.onDocument?.('close', d.uri, -1, '');
    this.notify('textDocument/didClose', { textDocument: { uri: d.uri } });
  }

  private change(d: Doc, changes: TextDocumentContentChangeEvent[]): void {
    if (!d.doc) return;
    const version = d.nextVersion++;
    d.doc = TextDocument.create(d.uri, 'cnn', version, applyChanges(d.doc.getText(), changes));
    this.remember(d, version, d.doc.getText());
    this.options.onDocument?.('change', d.uri, version, d.doc.getText(), changes);
    this.notify('textDocument/didChange', { textDocument: { uri: d.uri, version }, contentChanges: changes });
  }

  /** Keeps a version's text (older generations too: their diagnostics may still be on the way). */
  private remember(d: Doc, version: number, text: string): void {
    d.texts.set(version, text);
    if (d.texts.size > 2000) d.texts.delete(d.texts.keys().next().value!);
  }

  private notify(method: string, params: unknown): void {
    this.report.notifications++;
    void this.conn.sendNotification(method, params).catch(() => undefined);
  }

  /** A random edit: mostly small incremental ones (typing, deleting, pasting), sometimes the whole text. */
  private randomChange(d: Doc): TextDocumentContentChangeEvent {
    if (this.rnd.chance(0.1)) return { text: this.rnd.pick(this.texts) };
    const text = d.doc!.getText();
    const a = this.rnd.int(text.length + 1);
    const b = this.rnd.chance(0.5) ? a : Math.min(text.length, a + this.rnd.int(40));
    const insert = this.rnd.chance(0.3) ? '' : this.rnd.pick(INSERTS);
    const range = { start: d.doc!.positionAt(a), end: d.doc!.positionAt(b) };
    if (this.rnd.chance(0.05)) range.end = { line: range.end.line + 1000, character: 5 }; // past the end: clamps
    return { range, text: insert };
  }

  // ---- requests --------------------------------------------------------------------------

  /** Sends a request, recording when (and how) it is answered. */
  private request(method: string, params: unknown, cancel = false): void {
    this.report.requests++;
    const sent = performance.now();
    const source = new CancellationTokenSource();
    const seen = this.seenText(params);
    const answer = this.conn.sendRequest(method, params, source.token).then(
      (result) => {
        this.count('result');
        if (seen !== undefined) this.checkPositions(method, params, result, seen);
      },
      (e: unknown) => this.count(e instanceof ResponseError ? `error ${e.code}` : 'error (not a response)'),
    );
    const promise = this.withTimeout(answer, method, () => describeRequest(params, seen)).finally(() => this.latency(method, performance.now() - sent));
    this.pending.push({ method, sent, promise });
    if (cancel) setTimeout(() => source.cancel(), this.rnd.int(3));
  }

  private withTimeout(p: Promise<unknown>, method: string, context: () => string = () => ''): Promise<unknown> {
    let timer: ReturnType<typeof setTimeout>;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => {
        this.fail(`${method}: no answer within ${this.timeoutMs} ms${context()}`);
        resolve(undefined);
      }, this.timeoutMs);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  private count(kind: string): void {
    this.report.answers[kind] = (this.report.answers[kind] ?? 0) + 1;
  }

  private latency(method: string, ms: number): void {
    const list = this.latencies.get(method) ?? [];
    list.push(ms);
    this.latencies.set(method, list);
  }

  /** Waits for every request in flight. */
  private async drain(): Promise<void> {
    const all = this.pending.splice(0);
    await Promise.all(all.map((p) => p.promise));
    this.sampleMemory();
    if (this.exitCode !== null) this.fail(`the server exited (code ${this.exitCode})`);
  }

  /**
   * The text a request for `params` is answered against: the document as the server has it when
   * it reads the request. A copy: TextDocument.update changes the document it is given.
   */
  private seenText(params: unknown): TextDocument | undefined {
    const uri = (params as { textDocument?: { uri?: unknown } } | null)?.textDocument?.uri;
    const doc = this.docs.find((d) => d.uri === uri)?.doc;
    return doc && TextDocument.create(doc.uri, 'cnn', doc.version, doc.getText());
  }

  private position(doc: TextDocument | undefined): { line: number; character: number } {
    const r = this.rnd.float();
    if (!doc || r < 0.05) return { line: this.rnd.int(2 ** 31 - 1), character: this.rnd.int(2 ** 31 - 1) };
    if (r < 0.15) return { line: doc.lineCount + this.rnd.int(5), character: this.rnd.int(200) };
    const p = doc.positionAt(this.rnd.int(doc.getText().length + 1));
    return this.rnd.chance(0.1) ? { line: p.line, character: p.character + 1 + this.rnd.int(500) } : p;
  }

  private range(doc: TextDocument | undefined) {
    const a = this.position(doc);
    const b = this.position(doc);
    return this.rnd.chance(0.9) && (a.line > b.line || (a.line === b.line && a.character > b.character)) ? { start: b, end: a } : { start: a, end: b };
  }

  /** Well-formed params for each request the server offers. */
  private requestParams(method: string, d: Doc): unknown {
    const textDocument = { uri: d.uri };
    const options = { tabSize: 2, insertSpaces: true };
    switch (method) {
      case 'textDocument/references': return { textDocument, position: this.position(d.doc), context: { includeDeclaration: this.rnd.chance(0.5) } };
      case 'textDocument/rename': return { textDocument, position: this.position(d.doc), newName: this.rnd.pick(['x', 'conv', 'new_name', '1bad', '', 'cbr']) };
      case 'textDocument/codeAction': return { textDocument, range: this.range(d.doc), context: { diagnostics: [] } };
      case 'textDocument/formatting': return { textDocument, options };
      case 'textDocument/rangeFormatting': return { textDocument, range: this.range(d.doc), options };
      case 'textDocument/inlayHint': return { textDocument, range: this.range(d.doc) };
      case 'textDocument/documentSymbol': case 'textDocument/foldingRange': case 'textDocument/semanticTokens/full': return { textDocument };
      default: return { textDocument, position: this.position(d.doc) };
    }
  }

  /** The request methods the server's capabilities announce. */
  private methods(): string[] {
    const c = this.capabilities ?? {};
    const offered: [unknown, string][] = [
      [c.hoverProvider, 'textDocument/hover'], [c.completionProvider, 'textDocument/completion'], [c.definitionProvider, 'textDocument/definition'],
      [c.referencesProvider, 'textDocument/references'], [c.documentHighlightProvider, 'textDocument/documentHighlight'],
      [c.renameProvider, 'textDocument/rename'], [c.renameProvider, 'textDocument/prepareRename'], [c.documentSymbolProvider, 'textDocument/documentSymbol'],
      [c.foldingRangeProvider, 'textDocument/foldingRange'], [c.codeActionProvider, 'textDocument/codeAction'], [c.documentFormattingProvider, 'textDocument/formatting'],
      [c.documentRangeFormattingProvider, 'textDocument/rangeFormatting'], [c.inlayHintProvider, 'textDocument/inlayHint'], [c.semanticTokensProvider, 'textDocument/semanticTokens/full'],
    ];
    return offered.filter(([on]) => on).map(([, m]) => m);
  }

  /** Params a careless or broken client might send. */
  private malformedParams(d: Doc): unknown {
    const textDocument = { uri: d.uri };
    return this.rnd.pick<unknown>([
      null, undefined, 42, 'text', [], {},
      { position: { line: 0, character: 0 } },
      { textDocument: null, position: { line: 0, character: 0 } },
      { textDocument: { uri: 7 }, position: { line: 0, character: 0 } },
      { textDocument, position: null },
      { textDocument, position: { line: '1', character: 0 } },
      { textDocument, position: { line: -1, character: -5 } },
      { textDocument, position: { line: 1.5, character: NaN } },
      { textDocument, range: { start: { line: 0, character: 0 } } },
      { textDocument, range: 'all' },
      { textDocument, position: { line: 0, character: 0 }, newName: 5 },
      { textDocument, position: { line: 0, character: 0 }, context: null },
    ]);
  }

  // ---- checks ----------------------------------------------------------------------------

  /** Published diagnostics must lie within the text of the version they are for, their related places within theirs. */
  private checkDiagnostics(p: PublishDiagnosticsParams): void {
    this.publishedVersion.set(p.uri, p.version);
    for (const w of [...this.waiters]) w(p);
    if (p.diagnostics.length === 0) return;
    const d = this.docs.find((x) => x.uri === p.uri);
    const text = p.version === undefined ? undefined : d?.texts.get(p.version);
    if (text === undefined) return this.fail(`diagnostics for ${p.uri} version ${p.version}: no such version was sent`);
    const doc = TextDocument.create(p.uri, 'cnn', p.version!, text);
    for (const diag of p.diagnostics) {
      this.report.diagnosticsChecked++;
      if (!rangeWithin(doc, diag.range)) this.fail(`diagnostic ${diag.code} ${JSON.stringify(diag.range)} outside ${p.uri} v${p.version} (${doc.lineCount} lines): ${JSON.stringify(text.slice(0, 200))}`);
      // Related places lie in the document or in a file it imports (as it is on disk).
      for (const { location } of diag.relatedInformation ?? []) {
        const target = location.uri === p.uri ? doc : fileDocument(location.uri);
        if (!target || !rangeWithin(target, location.range)) this.fail(`diagnostic ${diag.code}: related ${JSON.stringify(location)} ${target ? `outside it (${target.lineCount} lines)` : 'in neither the document nor a file'}: ${JSON.stringify(text.slice(0, 200))}`);
      }
    }
  }

  /**
   * Every position and line number in an answer must lie within the text the request was answered
   * against, or, in a location of another file (an imported block's definition), within that file
   * as it is on disk.
   */
  private checkPositions(method: string, params: unknown, result: unknown, doc: TextDocument): void {
    for (const { where, uri } of positionsIn(result, doc.uri)) {
      const target = uri === doc.uri ? doc : fileDocument(uri);
      if (!target) return this.fail(`${method}: a location in ${uri}, which is neither the document nor a file${describeRequest(params, doc)}`);
      const ok = 'character' in where ? positionWithin(target, where) : where.line < target.lineCount;
      if (ok) continue;
      return this.fail(`${method}: ${JSON.stringify(where)} outside ${uri === doc.uri ? 'the document' : uri} (${target.lineCount} lines)${describeRequest(params, doc)}; answer ${JSON.stringify(result).slice(0, 1000)}`);
    }
  }

  // ---- the sequence ----------------------------------------------------------------------

  private async step(): Promise<void> {
    this.report.actions++;
    const d = this.rnd.pick(this.docs);
    const r = this.rnd.float();
    if (!d.doc && r < 0.5) this.open(d, this.rnd.pick(this.texts));
    else if (r < 0.05) (d.doc && this.rnd.chance(0.7) ? this.close(d) : this.open(d, this.rnd.pick(this.texts))); // an open of an open document too
    else if (r < 0.35) this.editOrStray(d);
    else if (r < 0.85) this.wellFormedRequest(d);
    else if (r < 0.93) this.request(this.rnd.pick(this.methods()), this.malformedParams(d));
    else if (r < 0.96) this.request(this.rnd.pick(['cnnc/noSuchMethod', 'textDocument/implementation', 'workspace/symbol', 'completionItem/resolve']), this.malformedParams(d));
    else if (r < 0.98) this.notify(this.rnd.pick(['$/noSuchNotification', 'textDocument/didSave', 'workspace/didChangeConfiguration']), this.malformedParams(d));
    else this.request(this.rnd.pick(this.methods()), { ...(this.requestParams('textDocument/hover', d) as object), textDocument: { uri: 'file:///fuzz/never-opened.cnn' } });
    if (this.rnd.chance(0.15) || this.pending.length > 30) await this.drain();
  }

  private editOrStray(d: Doc): void {
    if (!d.doc) this.notify('textDocument/didChange', { textDocument: { uri: d.uri, version: 99 }, contentChanges: [{ text: 'model' }] }); // not open: ignored
    else if (this.rnd.chance(0.05)) this.malformedChange(d);
    else this.change(d, Array.from({ length: 1 + this.rnd.int(3) }, () => this.randomChange(d)));
  }

  /** A change notification a broken client might send; the server must keep the text it has. */
  private malformedChange(d: Doc): void {
    const version = d.nextVersion++;
    const kind = this.rnd.int(5);
    if (kind === 0) return this.notify('textDocument/didChange', { contentChanges: [{ text: 'x' }] }); // no document: nothing happens
    if (kind === 1) return this.notify('textDocument/didChange', { textDocument: { uri: d.uri, version: null }, contentChanges: [{ text: 'x' }] });
    // changes that are not changes: dropped, but the document takes the version
    const contentChanges = [[{ text: 5 }], [{ range: null, text: 'x' }], 'garbage'][kind - 2];
    d.doc = TextDocument.create(d.uri, 'cnn', version, d.doc!.getText());
    this.remember(d, version, d.doc.getText());
    this.options.onDocument?.('change', d.uri, version, d.doc.getText(), []);
    this.notify('textDocument/didChange', { textDocument: { uri: d.uri, version }, contentChanges });
  }

  /** A request with the params its method needs (one in ten with another method's), sometimes cancelled at once. */
  private wellFormedRequest(d: Doc): void {
    const method = this.rnd.pick(this.methods());
    const paramsOf = this.rnd.chance(0.1) ? this.rnd.pick(this.methods()) : method;
    this.request(method, this.requestParams(paramsOf, d), this.rnd.chance(0.05));
  }

  /** The inputs that once broke the server, in a fixed order before the random ones. */
  private async scenarios(): Promise<void> {
    const [a, b, c] = this.docs;
    this.options.onScenario?.('nested repeats of 10,000');
    this.open(a, 'model m { input 1x8x8 repeat 10000 { repeat 10000 { foo } } }');
    this.request('textDocument/hover', { textDocument: { uri: a.uri }, position: { line: 0, character: 30 } });
    await this.drain();
    this.close(a);
    this.options.onScenario?.('a 5 MB document');
    await this.bigDocument(b);
    this.options.onScenario?.('1,000 edits at once');
    await this.rapidEdits(c);
    this.options.onScenario?.('random actions');
    this.close(c);
  }

  /** A 5 MB document: open, ask everything, edit, close. */
  private async bigDocument(d: Doc): Promise<void> {
    const line = '  -> conv 8 3x3 pad=same -> relu   # a comment\n';
    const text = 'model M {\n  input 8x8x8\n  conv 8 3x3 pad=same\n' + line.repeat(Math.ceil(5e6 / line.length)) + '}\n';
    this.open(d, text);
    for (const m of this.methods()) this.request(m, this.requestParams(m, d));
    this.change(d, [{ range: { start: { line: 5, character: 2 }, end: { line: 5, character: 4 } }, text: '|>' }]);
    this.request('textDocument/hover', { textDocument: { uri: d.uri }, position: { line: 5, character: 8 } });
    await this.drain();
    this.close(d);
  }

  /** 1,000 edits sent at once (typing a layer name, one character per change), then a request; the last version must get diagnostics. */
  private async rapidEdits(d: Doc): Promise<void> {
    this.open(d, 'model M {\n  input 3x32x32\n  conv 8 3x3\n}\n');
    const word = ' -> relu';
    for (let i = 0; i < 1000; i++) {
      const end = d.doc!.positionAt(d.doc!.getText().lastIndexOf('\n}'));
      this.change(d, [{ range: { start: end, end }, text: word[i % word.length] }]);
    }
    this.request('textDocument/hover', { textDocument: { uri: d.uri }, position: { line: 2, character: 3 } });
    await this.drain();
    await this.diagnosticsFor(d);
  }

  /** Diagnostics for a document's current version arrive (the debounce must end even after a burst). */
  private async diagnosticsFor(d: Doc): Promise<void> {
    const version = d.doc?.version;
    if (version === undefined || this.publishedVersion.get(d.uri) === version) return;
    const got = await new Promise<boolean>((resolve) => {
      const waiter = (p: PublishDiagnosticsParams) => {
        if (p.uri !== d.uri || p.version !== version) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(true);
      };
      const timer = setTimeout(() => (this.waiters.delete(waiter), resolve(false)), this.timeoutMs);
      this.waiters.add(waiter);
      // a probe request: the answer means the server has read every change before it
      this.request('textDocument/documentSymbol', { textDocument: { uri: d.uri } });
    });
    if (!got && this.publishedVersion.get(d.uri) !== version) this.fail(`no diagnostics for ${d.uri} version ${version}`);
  }

  private readonly publishedVersion = new Map<string, number | undefined>();
  /** Called with every diagnostics notification (the connection keeps one handler per method). */
  private readonly waiters = new Set<(p: PublishDiagnosticsParams) => void>();

  private async finalDiagnostics(): Promise<void> {
    for (const d of this.docs) await this.diagnosticsFor(d);
    await this.drain();
  }

  /** shutdown, then exit: the process must end with status 0 within 10 s. */
  private async shutdown(): Promise<void> {
    if (this.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    await this.withTimeout(this.conn.sendRequest(ShutdownRequest.type), 'shutdown');
    const sent = performance.now();
    void this.conn.sendNotification(ExitNotification.type).catch(() => undefined);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    this.report.exitMs = Math.round(performance.now() - sent);
    if (this.report.exitMs >= 10_000 || this.exitCode !== 0) this.fail(`exit: status ${this.exitCode} after ${this.report.exitMs} ms`);
    this.conn.dispose();
  }

  private latencySummary(): FuzzReport['latency'] {
    const out: FuzzReport['latency'] = {};
    for (const [method, list] of [...this.latencies].sort()) {
      const s = [...list].sort((x, y) => x - y);
      const q = (f: number) => Math.round(s[Math.min(s.length - 1, Math.floor(f * s.length))] * 10) / 10;
      out[method] = { n: s.length, p50: q(0.5), p95: q(0.95), max: q(1) };
    }
    return out;
  }
}

/**
 * What the changes of one notification make of `text`, by the LSP's rules: each range, clamped to
 * the text as the previous changes left it (a line past the last is the end; a character past a
 * line's end is the line's end), is replaced by the change's text. Worked out afresh for each
 * change rather than with TextDocument.update, whose line table goes wrong on out-of-range ranges.
 */
function applyChanges(text: string, changes: TextDocumentContentChangeEvent[]): string {
  for (const c of changes) {
    if (!('range' in c) || !c.range) {
      text = c.text;
      continue;
    }
    const doc = TextDocument.create('file:///mirror', 'cnn', 0, text);
    let [a, b] = [doc.offsetAt(c.range.start), doc.offsetAt(c.range.end)];
    if (a > b) [a, b] = [b, a];
    text = text.slice(0, a) + c.text + text.slice(b);
  }
  return text;
}

/** A request's params and the text it was answered against, for a failure's message. */
function describeRequest(params: unknown, doc: TextDocument | undefined): string {
  const text = doc?.getText();
  const shown = text === undefined ? 'none' : JSON.stringify(text.length > 3000 ? text.slice(0, 3000) + '...' : text);
  return `; params ${JSON.stringify(params)?.slice(0, 500)}; version ${doc?.version}, text ${shown}`;
}

type Where = { line: number; character: number } | { line: number };

/**
 * Positions ({line, character}) and folding lines ({startLine, endLine}) anywhere in an answer,
 * each with the document it is in: `uri`, or the `uri` of the location that holds it.
 */
function* positionsIn(v: unknown, uri: string): Generator<{ where: Where; uri: string }> {
  if (Array.isArray(v)) for (const x of v) yield* positionsIn(x, uri);
  else if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const at = typeof o.uri === 'string' ? o.uri : uri;
    if (typeof o.line === 'number' && typeof o.character === 'number') yield { where: { line: o.line, character: o.character }, uri: at };
    if (typeof o.startLine === 'number' && typeof o.endLine === 'number') yield { where: { line: o.startLine }, uri: at }, yield { where: { line: o.endLine }, uri: at };
    for (const [k, x] of Object.entries(o)) if (k !== 'data') yield* positionsIn(x, at);
  }
}

/** A file: URI's text as it is on disk, or undefined when it names no readable file. */
function fileDocument(uri: string): TextDocument | undefined {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return TextDocument.create(uri, 'cnn', 0, readFileSync(fileURLToPath(uri), 'utf8'));
  } catch {
    return undefined;
  }
}

function positionWithin(doc: TextDocument, p: { line: number; character: number }): boolean {
  if (!Number.isInteger(p.line) || !Number.isInteger(p.character) || p.line < 0 || p.character < 0) return false;
  if (p.line >= doc.lineCount) return false;
  // the position's offset maps back to the same position only when it is on the line
  const back = doc.positionAt(doc.offsetAt(p));
  return back.line === p.line && back.character === p.character;
}

function rangeWithin(doc: TextDocument, r: { start: { line: number; character: number }; end: { line: number; character: number } }): boolean {
  if (!positionWithin(doc, r.start) || !positionWithin(doc, r.end)) return false;
  return doc.offsetAt(r.start) <= doc.offsetAt(r.end);
}

export function runLspFuzz(options: FuzzOptions): Promise<FuzzReport> {
  return new LspFuzzer(options).run();
}
