/** The programmatic API: check a source text and get its checked models and diagnostics. */
import path from 'node:path';
import { parse } from './compiler/parser.ts';
import { checkFile } from './compiler/checker.ts';
import { finishDiagnostics, type Diagnostic } from './compiler/diagnostics.ts';
import { nodeHost, type ImportHost } from './compiler/host.ts';
import { resolveImports, type ImportCache, type Imports } from './compiler/imports.ts';
import type { CheckedModel } from './compiler/model.ts';
import type { SourceFile } from './compiler/ast.ts';
import { SourceSet } from './compiler/source.ts';
import type { StepLookup } from './compiler/step-cache.ts';

export interface CheckResult {
  file: string;
  text: string;
  ast: SourceFile;
  models: CheckedModel[];
  /** In text order; those in imported files after the file's own (their spans lie past it: SourceSet). */
  diagnostics: Diagnostic[];
  /** The file and every file it imports, for placing spans. */
  sources: SourceSet;
  imports: Imports;
}

/** Where a check reads imports from: the file's own path (none for text without a file: imports are then relative to the working directory) and the host. */
export interface CheckOptions {
  path?: string;
  host?: ImportHost;
  cache?: ImportCache;
}

/** Never throws on any input: every problem becomes a diagnostic. */
export function check(text: string, file = '<input>', options: CheckOptions = {}): CheckResult {
  const parsed = parse(text);
  const sources = sourcesOf(file, text, options);
  return checkResolved(parsed, sources, resolveImports(parsed.ast, sources, options.host ?? nodeHost, options.cache));
}

/** The texts of a check, with only the file's own so far. */
export function sourcesOf(file: string, text: string, options: CheckOptions): SourceSet {
  return new SourceSet(file, text, options.path ?? (file === '<input>' ? undefined : path.resolve(file)));
}

/** The check of a parsed text whose imports are resolved (check's, or the language server's incremental parse). */
export function checkResolved(parsed: { ast: SourceFile; diagnostics: readonly Diagnostic[] }, sources: SourceSet, imports: Imports, steps?: StepLookup): CheckResult {
  const found = [...parsed.diagnostics, ...imports.diagnostics];
  const models = checkFile(parsed.ast, found, steps, imports.blocks);
  const { name, text } = sources.main;
  return { file: name, text, ast: parsed.ast, models, diagnostics: finishDiagnostics(found, sources), sources, imports };
}

export type { CheckedModel } from './compiler/model.ts';
export type { Diagnostic } from './compiler/diagnostics.ts';
