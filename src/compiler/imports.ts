/**
 * Imports: `import "blocks.cnn"` (relative to the importing file), `import std` (every module of
 * the standard library) and `import std.resnet` (one). Each file is read once, however many files
 * import it, and parsed with its spans moved to a base of its own in the check's SourceSet, so
 * that a diagnostic anywhere names its file and place. A file sees the blocks of every file it
 * imports, directly or through others; only blocks are imported (an imported file's models are not
 * checked). Cycles, unreadable files, unknown library modules and two blocks of one name in
 * different files are reported at the import line; syntax errors of an imported file at their place in it.
 */
import path from 'node:path';
import type * as A from './ast.ts';
import { closestName, diagnostic, type Diagnostic } from './diagnostics.ts';
import type { ImportHost } from './host.ts';
import { lookupLayer } from './layers/index.ts';
import { parse } from './parser.ts';
import type { Source, SourceSet } from './source.ts';
import { UserError } from '../errors.ts';

/** The most files one check imports, and the most text they hold together. */
const MAX_IMPORTED_FILES = 256;
const MAX_IMPORTED_CHARS = 64 * 1024 * 1024;

export const LIBRARY = 'std';

export interface Imports {
  /** The imported blocks, each name once (of a clash, the first one read). */
  blocks: A.BlockDecl[];
  diagnostics: Diagnostic[];
  /** For each imported file, the import of the file checked that brought it in (directly or not). */
  through: ReadonlyMap<Source, A.ImportDecl>;
}

/** A file to import: its absolute path, its name as shown and its Source label. */
interface Target {
  path: string;
  name: string;
  label: string;
}

/**
 * Parsed imported files, kept between checks of one document (the language server's): a file
 * read again with the same text at the same base gives the same syntax tree, so the same block
 * declarations, and the checks cached for the document's steps stay valid.
 */
export class ImportCache {
  private readonly files = new Map<string, { text: string; base: number; ast: A.SourceFile; diagnostics: Diagnostic[] }>();

  parsed(file: string, text: string, base: number): { ast: A.SourceFile; diagnostics: Diagnostic[] } {
    const known = this.files.get(file);
    if (known && known.text === text && known.base === base) return known;
    const { ast, diagnostics } = parse(text);
    shiftSpans([ast, diagnostics], base, new Set());
    this.files.set(file, { text, base, ast, diagnostics });
    return { ast, diagnostics };
  }
}

/** Reads and parses what `file` (sources.main's syntax tree) imports, adding each file read to `sources`. */
export function resolveImports(file: A.SourceFile, sources: SourceSet, host: ImportHost, cache = new ImportCache()): Imports {
  const resolver = new Resolver(sources, host, cache);
  for (const b of file.blocks) if (b.name && !resolver.owners.has(b.name)) resolver.owners.set(b.name, b);
  const main = sources.main;
  resolver.visit(file, main, main.path ? [main.path] : []);
  return { blocks: resolver.blocks, diagnostics: resolver.diagnostics, through: resolver.through };
}

class Resolver {
  /** Every block name in scope, with its declaration (in the file checked or an imported one). */
  readonly owners = new Map<string, A.BlockDecl>();
  readonly blocks: A.BlockDecl[] = [];
  readonly diagnostics: Diagnostic[] = [];
  readonly through = new Map<Source, A.ImportDecl>();
  /** Absolute path to the name shown, for every file read (and the file checked). */
  private readonly names = new Map<string, string>();
  private chars = 0;
  private full = false;

  constructor(private readonly sources: SourceSet, private readonly host: ImportHost, private readonly cache: ImportCache) {
    const main = sources.main;
    if (main.path) this.names.set(main.path, main.name);
  }

  /** The imports of one file; `chain`: the files being visited, outermost first, this one last. */
  visit(ast: A.SourceFile, source: Source, chain: string[]): void {
    const direct = new Set<string>();
    for (const decl of ast.imports) {
      for (const target of this.targets(decl, source)) {
        if (direct.has(target.path)) {
          this.diagnostics.push(diagnostic('importRepeated', decl.targetSpan, { file: target.name }));
          continue;
        }
        direct.add(target.path);
        const at = chain.indexOf(target.path);
        if (at >= 0) {
          const cycle = [...chain.slice(at), target.path].map((p) => this.names.get(p) ?? p).join(' → ');
          this.diagnostics.push(diagnostic('importCycle', decl.targetSpan, { cycle }));
          continue;
        }
        if (this.names.has(target.path)) continue; // read already, through another import
        const imported = this.read(target, decl);
        if (!imported) continue;
        this.through.set(imported.source, this.through.get(source) ?? decl);
        this.visit(imported.ast, imported.source, [...chain, target.path]);
        this.declare(imported.ast, imported.source, decl);
      }
    }
  }

  /** The files an import names; none (after a diagnostic) when it names nothing there is. */
  private targets(decl: A.ImportDecl, from: Source): Target[] {
    const target = decl.target;
    if (!target) return []; // a syntax error, reported by the parser
    if (target.kind === 'file') {
      const dir = from.path ? path.dirname(from.path) : process.cwd();
      const joined = (to: string) => (path.isAbsolute(target.path) ? target.path : path.join(path.dirname(to), target.path));
      return [{ path: path.resolve(dir, target.path), name: joined(from.name), label: joined(from.label) }];
    }
    const modules = this.host.library();
    const all = [...modules.keys()];
    if (target.name !== LIBRARY) {
      this.diagnostics.push(diagnostic('unknownLibrary', decl.targetSpan, { name: target.name }, { hint: `the standard library is imported with \`import ${LIBRARY}\` or \`import ${LIBRARY}.MODULE\`; a file with \`import "FILE.cnn"\`` }));
      return [];
    }
    const module = (name: string) => ({ path: modules.get(name)!, name: `${LIBRARY}/${name}.cnn`, label: `${LIBRARY}/${name}.cnn` });
    if (target.module === undefined) return all.map(module);
    if (modules.has(target.module)) return [module(target.module)];
    const guess = closestName(target.module, all);
    this.diagnostics.push(diagnostic('unknownLibrary', decl.targetSpan, { name: `${LIBRARY}.${target.module}` }, {
      hint: `${guess ? `did you mean "${LIBRARY}.${guess}"? ` : ''}the modules of ${LIBRARY} are ${all.join(', ')}`,
    }));
    return [];
  }

  /** Reads and parses one file, within the limits; undefined (after a diagnostic) when it cannot be. */
  private read(target: Target, decl: A.ImportDecl): { ast: A.SourceFile; source: Source } | undefined {
    if (this.full) return undefined;
    let text: string;
    try {
      text = this.host.read(target.path);
    } catch (e) {
      const reason = e instanceof UserError ? e.reason : e instanceof Error ? e.message : String(e);
      this.diagnostics.push(diagnostic('importUnreadable', decl.targetSpan, { file: target.name, reason }));
      return undefined;
    }
    this.chars += text.length;
    if (this.names.size >= MAX_IMPORTED_FILES || this.chars > MAX_IMPORTED_CHARS) {
      this.full = true;
      const limit = this.chars > MAX_IMPORTED_CHARS ? `${MAX_IMPORTED_CHARS.toLocaleString('en-US')} characters` : `${MAX_IMPORTED_FILES} files`;
      this.diagnostics.push(diagnostic('importsTooLarge', decl.targetSpan, { limit }));
      return undefined;
    }
    this.names.set(target.path, target.name);
    const source = this.sources.add(target.name, target.label, target.path, text);
    const { ast, diagnostics } = this.cache.parsed(target.path, text, source.base);
    const importedHere = { span: decl.targetSpan, message: `${target.name} is imported here` };
    for (const d of diagnostics) this.diagnostics.push({ ...d, related: [...(d.related ?? []), importedHere] });
    return { ast, source };
  }

  /** Brings an imported file's blocks into scope, reporting names declared twice there or taken already. */
  private declare(ast: A.SourceFile, source: Source, decl: A.ImportDecl): void {
    for (const b of ast.blocks) {
      if (!b.name) continue;
      const owner = this.owners.get(b.name);
      if (lookupLayer(b.name)) {
        this.diagnostics.push(diagnostic('duplicateName', b.nameSpan, { what: 'block (shadowing a layer kind)', name: b.name }));
      } else if (!owner) {
        this.owners.set(b.name, b);
        this.blocks.push(b);
      } else if (this.sources.of(owner.span.start) === source) {
        this.diagnostics.push(diagnostic('duplicateName', b.nameSpan, { what: 'block', name: b.name }));
      } else {
        const other = this.sources.of(owner.span.start).name;
        this.diagnostics.push(diagnostic('importClash', decl.targetSpan, { name: b.name, file: source.name, other }, {
          hint: 'rename one of them, or import only the library modules you use (`import std.MODULE`)',
          related: [{ span: b.nameSpan, message: `"${b.name}" in ${source.name}` }, { span: owner.nameSpan, message: `"${b.name}" in ${other}` }],
        }));
      }
    }
  }
}

/** Adds `by` to every span in a parse result (each span object once: recovery may share them). */
function shiftSpans(value: unknown, by: number, seen: Set<object>): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  const record = value as Record<string, unknown>;
  if (typeof record.start === 'number' && typeof record.end === 'number') {
    record.start += by;
    record.end += by;
  } else for (const v of Object.values(record)) shiftSpans(v, by, seen);
}
