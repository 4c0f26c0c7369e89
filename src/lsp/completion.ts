/**
 * Completion from the tokens before the cursor: layer kinds, blocks, keywords and snippets where
 * a step starts; the options of the layer being written (and their values after `=`); train
 * fields and their values; `model` and `block` at the top level.
 */
import { CompletionItemKind, InsertTextFormat, MarkupKind, type CompletionItem, type Position } from 'vscode-languageserver';
import type { IToken } from 'chevrotain';
import * as T from '../compiler/lexer.ts';
import { blockSignature, showExpr } from '../compiler/args.ts';
import type * as A from '../compiler/ast.ts';
import { combinatorList } from '../compiler/combinators/index.ts';
import { layerKinds, layerNames, lookupLayer } from '../compiler/layers/index.ts';
import type { ArgSpec } from '../compiler/layers/types.ts';
import { trainFields } from '../compiler/train-config.ts';
import type { Analysis } from './analysis.ts';
import { layerDoc, specLine } from './hover.ts';

interface Snippet {
  label: string;
  detail: string;
  body: string;
}

const stepSnippets: Snippet[] = [
  { label: 'conv-bn-relu', detail: 'convolution, batch norm, ReLU', body: 'conv ${1:64} ${2:3x3} pad=same bias=off -> bn -> relu' },
  {
    label: 'residual basic block',
    detail: 'ResNet basic block: two 3x3 conv-bn with an identity shortcut',
    body: 'residual {\n\tconv ${1:64} 3x3 pad=same bias=off -> bn -> relu\n\t-> conv ${1:64} 3x3 pad=same bias=off -> bn\n} -> relu',
  },
  {
    label: 'residual bottleneck (projection)',
    detail: 'ResNet bottleneck 1x1-3x3-1x1 with a projection shortcut',
    body: 'residual project {\n\tconv ${1:64} 1x1 bias=off -> bn -> relu\n\t-> conv ${1:64} 3x3 stride=${2:1} pad=1 bias=off -> bn -> relu\n\t-> conv ${3:256} 1x1 bias=off -> bn\n} -> relu',
  },
  { label: 'SE gate', detail: 'squeeze-and-excitation: x * sigmoid(fc(relu(fc(pool(x)))))', body: 'gate { globalavgpool -> conv ${1:16} 1x1 -> relu -> conv ${2:64} 1x1 -> sigmoid }' },
  {
    label: 'inception concat',
    detail: 'Inception module: four branches joined on channels',
    body: 'concat {\n\tconv ${1:64} 1x1 -> relu\n| conv ${2:96} 1x1 -> relu -> conv ${3:128} 3x3 pad=same -> relu\n| conv ${4:16} 1x1 -> relu -> conv ${5:32} 5x5 pad=same -> relu\n| maxpool 3 stride=1 pad=1 -> conv ${6:32} 1x1 -> relu\n}',
  },
  { label: 'classifier head', detail: 'global pooling, flatten, dense', body: 'globalavgpool -> flatten -> dense ${1:10}' },
];

const keywordSnippets: Snippet[] = combinatorList.map((c) => ({ label: c.keyword, ...c.snippet }));

const topSnippets: Snippet[] = [
  { label: 'model', detail: 'a model with an input shape and a chain of layers', body: 'model ${1:Net} {\n\tinput ${2:3x32x32}\n\t$0\n}' },
  { label: 'block', detail: 'a reusable block with parameters', body: 'block ${1:name}(${2:c}) {\n\t$0\n}' },
];

const trainSnippet: Snippet = {
  label: 'train',
  detail: 'the train section: loss, optimizer, schedule, batch, epochs, ...',
  body: 'train {\n\tloss: ${1|cross_entropy,bce,mse|}\n\toptimizer: ${2|adam,sgd,adamw|} lr=${3:1e-3}\n\tbatch: ${4:64}\n\tepochs: ${5:10}\n}',
};

function snippetItem(s: Snippet, kind: CompletionItemKind, sort: string): CompletionItem {
  return { label: s.label, kind, detail: s.detail, insertText: s.body, insertTextFormat: InsertTextFormat.Snippet, sortText: sort + s.label };
}

/**
 * A snippet as plain text, for clients without snippet support (which insert `$1` literally, or
 * worse): placeholders become their default (`${1:64}` -> `64`, `${1|a,b|}` -> `a`), tab stops
 * vanish, and tabs (a snippet's indentation unit) become the formatter's two spaces.
 */
export function snippetToText(body: string): string {
  return body
    .replace(/\$\{\d+:([^}]*)\}/g, '$1')
    .replace(/\$\{\d+\|([^,|]*)[^}]*\|\}/g, '$1')
    .replace(/\$\{?\d+\}?/g, '')
    .replace(/\\([$}\\])/g, '$1')
    .replace(/\t/g, '  ');
}

/** Rewrites snippet items as plain-text ones. */
function withoutSnippets(items: CompletionItem[]): CompletionItem[] {
  return items.map((item) =>
    item.insertTextFormat === InsertTextFormat.Snippet
      ? { ...item, insertText: snippetToText(item.insertText ?? item.label), insertTextFormat: InsertTextFormat.PlainText }
      : item,
  );
}

export interface CompletionOptions {
  /** Whether the client declared `completionItem.snippetSupport`. */
  snippets: boolean;
}

type Context = 'top' | 'model' | 'block' | 'body' | 'train';

export function completion(analysis: Analysis, position: Position, options: CompletionOptions = { snippets: true }): CompletionItem[] {
  const items = completionItems(analysis, position);
  return options.snippets ? items : withoutSnippets(items);
}

function completionItems(analysis: Analysis, position: Position): CompletionItem[] {
  const offset = analysis.offset(position);
  const before = analysis.text.slice(0, offset);
  const lexed = T.cnnLexer.tokenize(before);
  const lastComment = lexed.groups.comments?.at(-1);
  const inLineComment = lastComment?.tokenType === T.Comment && lastComment.startOffset + lastComment.image.length >= offset;
  const inBlockComment = before.lastIndexOf('/*') > (lastComment?.tokenType === T.BlockComment ? lastComment.startOffset : -1);
  if (inLineComment || inBlockComment) return [];
  const lineBefore = analysis.lines.lineText(position.line).slice(0, position.character);
  if ((lineBefore.replace(/#.*|\/\/.*/, '').match(/"/g)?.length ?? 0) % 2 === 1) return [];
  const tokens = lexed.tokens;
  let last = tokens.at(-1);
  let prefixLength = 0;
  if (last && last.endOffset! + 1 === offset) {
    if (last.tokenType === T.NumberLiteral || last.tokenType === T.Dims) return [];
    if (last.tokenType === T.Identifier || T.keywords.includes(last.tokenType)) {
      prefixLength = last.image.length;
      tokens.pop();
      last = tokens.at(-1);
    }
  }
  const blankLine = lineBefore.slice(0, lineBefore.length - prefixLength).trim() === '';
  const { context, start } = contextOf(tokens);
  const prev = tokens.at(-1);
  const prev2 = tokens.at(-2);

  if (context === 'top') return topSnippets.map((s) => snippetItem(s, CompletionItemKind.Snippet, '0'));

  if (context === 'train') {
    const entry = trainEntryAt(tokens, start);
    if (!entry || (blankLine && prev?.tokenType !== T.Colon && prev?.tokenType !== T.Equals)) return trainFieldItems();
    const specs = trainFields[entry as keyof typeof trainFields];
    if (!specs) return trainFieldItems();
    if (prev?.tokenType === T.Equals && prev2) return valueItems(specs.find((s) => s.name === prev2.image));
    if (prev?.tokenType === T.Colon) {
      const positional = specs.find((s) => s.positional);
      return [...valueItems(positional), ...optionItems(specs, new Set())];
    }
    return optionItems(specs, givenOptions(tokens, start));
  }

  let stepStart = stepStartIndex(tokens, start);
  if (tokens[stepStart]?.tokenType === T.Input) {
    // `input 3x32x32` then the first step, usually on the next line (no `->` between them)
    const line = tokens[stepStart].startLine;
    const next = tokens.findIndex((t, i) => i > stepStart && t.startLine !== line);
    if (next >= 0) stepStart = next;
    else if (blankLine) stepStart = tokens.length;
  }
  if (prev?.tokenType === T.Equals && prev2) {
    const specs = stepSpecs(analysis, tokens, stepStart);
    return valueItems(specs?.find((s) => s.name === prev2.image));
  }
  const atStepStart =
    !prev ||
    [T.Arrow, T.LBrace, T.Pipe].includes(prev.tokenType) ||
    (prev.tokenType === T.Colon && prev2?.tokenType === T.Identifier) ||
    (blankLine && context === 'model' && !tokens.slice(start + 1).some((t) => t.tokenType === T.Arrow)) ||
    (blankLine && context !== 'model');
  if (atStepStart) {
    const items = stepItems(analysis);
    if (context === 'model') {
      const hasInput = tokens.slice(start + 1).some((t) => t.tokenType === T.Input);
      if (!hasInput && prev?.tokenType === T.LBrace) items.push({ label: 'input', kind: CompletionItemKind.Keyword, detail: 'input CxHxW [mean=] [std=] [classes=]', insertText: 'input ${1:3x32x32}', insertTextFormat: InsertTextFormat.Snippet, sortText: '0input' });
      if (blankLine) items.push(snippetItem(trainSnippet, CompletionItemKind.Snippet, '5'));
    }
    return items;
  }
  // Right after a combinator's keyword: the values of its positional choice (`residual project`).
  const choice = combinatorList.find((c) => c.token === prev?.tokenType)?.args?.find((a) => a.positional && a.values);
  if (choice) {
    return choice.values!.filter((v) => v !== choice.default).map((v) => ({ label: v, kind: CompletionItemKind.EnumMember, detail: choice.doc, sortText: '0' }));
  }
  const specs = stepSpecs(analysis, tokens, stepStart);
  if (specs) return optionItems(specs, givenOptions(tokens, stepStart));
  return [];
}

/** The innermost open brace's context, and the index of that `{` (-1 at the top level). */
function contextOf(tokens: IToken[]): { context: Context; start: number } {
  const stack: { context: Context; start: number }[] = [];
  tokens.forEach((t, i) => {
    if (t.tokenType === T.LBrace) {
      const before = tokens[i - 1]?.tokenType;
      let context: Context = 'body';
      if (before === T.Train) context = 'train';
      else if (stack.length === 0) context = tokens[i - 2]?.tokenType === T.Model ? 'model' : 'block';
      stack.push({ context, start: i });
    } else if (t.tokenType === T.RBrace) stack.pop();
  });
  return stack.at(-1) ?? { context: 'top', start: -1 };
}

/** The index of the first token of the step being written (after `->`, `{`, `|` or a label). */
function stepStartIndex(tokens: IToken[], start: number): number {
  let depth = 0;
  for (let i = tokens.length - 1; i > start; i--) {
    const type = tokens[i].tokenType;
    if (type === T.RParen || type === T.RBracket || type === T.RBrace) depth++;
    else if (type === T.LParen || type === T.LBracket || type === T.LBrace) {
      if (depth === 0) return i + 1;
      depth--;
    } else if (depth === 0 && (type === T.Arrow || type === T.Pipe)) return i + 1;
  }
  return start + 1;
}

/** The argument specs of the step starting at `i` (inside its call form's `(` too): a layer kind's, a block's, or residual's. */
function stepSpecs(analysis: Analysis, tokens: IToken[], i: number): readonly ArgSpec[] | undefined {
  if (tokens[i - 1]?.tokenType === T.LParen && tokens[i - 2]?.tokenType === T.Identifier) i -= 2;
  if (tokens[i]?.tokenType === T.Identifier && tokens[i + 1]?.tokenType === T.Colon) i += 2;
  const block = tokens[i]?.tokenType === T.Identifier ? analysis.block(tokens[i].image) : undefined;
  if (block) return block.params.map(paramSpec);
  const first = tokens[i];
  if (!first) return undefined;
  const combinator = combinatorList.find((c) => c.token === first.tokenType);
  if (combinator) return combinator.args;
  if (first.tokenType === T.Input) return [
    { name: 'mean', type: 'number', doc: 'per-channel mean subtracted in preprocessing' },
    { name: 'std', type: 'number', doc: 'per-channel standard deviation' },
    { name: 'classes', type: 'enum', doc: 'class names, in label order' },
  ];
  return first.tokenType === T.Identifier ? lookupLayer(first.image)?.args : undefined;
}

/** A block parameter as an option to complete: any can be given by name; one whose default is a layer takes layers. */
function paramSpec(p: A.BlockParam): ArgSpec {
  const d = p.default;
  const layer = d && ((d.kind === 'name' && lookupLayer(d.name)) || (d.kind === 'call' && lookupLayer(d.callee)));
  return { name: p.name, type: 'enum', values: layer ? layerNames : undefined, doc: d ? `default ${showExpr(d)}` : 'required' };
}

function givenOptions(tokens: IToken[], from: number): Set<string> {
  const given = new Set<string>();
  for (let i = from; i < tokens.length - 1; i++) if (tokens[i].tokenType === T.Identifier && tokens[i + 1].tokenType === T.Equals) given.add(tokens[i].image);
  return given;
}

function trainEntryAt(tokens: IToken[], start: number): string | undefined {
  for (let i = tokens.length - 2; i > start; i--) {
    if (tokens[i].tokenType === T.Identifier && tokens[i + 1].tokenType === T.Colon) {
      // the entry's options follow; from here on everything belongs to this entry
      for (let k = i + 2; k < tokens.length - 1; k++) if (tokens[k].tokenType === T.Identifier && tokens[k + 1].tokenType === T.Colon) return undefined;
      return tokens[i].image;
    }
  }
  return undefined;
}

function stepItems(analysis: Analysis): CompletionItem[] {
  const items: CompletionItem[] = [];
  for (const kind of layerKinds) {
    const doc = { kind: MarkupKind.Markdown, value: layerDoc(kind) };
    items.push({ label: kind.name, kind: CompletionItemKind.Function, detail: kind.doc, documentation: doc, sortText: '1' + kind.name });
    for (const alias of kind.aliases ?? []) {
      items.push({ label: alias, kind: CompletionItemKind.Function, detail: `${kind.name}: ${kind.doc}`, documentation: doc, sortText: '4' + alias });
    }
  }
  for (const block of analysis.blocks) {
    if (!block.name) continue;
    // The snippet has the parameters without defaults; the others are offered as `name=` inside.
    const required = block.params.filter((p) => !p.default);
    const params = required.map((p, i) => `\${${i + 1}:${p.name}}`).join(', ');
    items.push({
      label: block.name,
      kind: CompletionItemKind.Class,
      detail: `block ${blockSignature(block)}${analysis.isOwn(block.span) ? '' : ` from ${analysis.result.sources.of(block.span.start).name}`}`,
      insertText: required.length ? `${block.name}(${params})` : block.params.length ? `${block.name}($1)` : block.name,
      insertTextFormat: InsertTextFormat.Snippet,
      sortText: '0' + block.name,
    });
  }
  items.push(...keywordSnippets.map((s) => snippetItem(s, CompletionItemKind.Keyword, '2')));
  items.push(...stepSnippets.map((s) => snippetItem(s, CompletionItemKind.Snippet, '3')));
  return items;
}

function optionItems(specs: readonly ArgSpec[], given: Set<string>): CompletionItem[] {
  return specs
    .filter((s) => !given.has(s.name) && !(s.positional && s.required))
    .map((s) => ({
      label: `${s.name}=`,
      kind: CompletionItemKind.Property,
      detail: s.doc,
      documentation: { kind: MarkupKind.Markdown, value: specLine(s) },
      insertText: `${s.name}=`,
      filterText: s.name,
      sortText: (s.positional ? '1' : '0') + s.name,
    }));
}

function valueItems(spec: ArgSpec | undefined): CompletionItem[] {
  if (!spec) return [];
  const values =
    spec.type === 'bool' ? ['on', 'off'] :
    spec.type === 'pad' ? ['same', 'valid'] :
    spec.values ? [...spec.values] : [];
  const def = spec.default === true ? 'on' : spec.default === false ? 'off' : String(spec.default);
  return values.map((v, i) => ({
    label: v,
    kind: CompletionItemKind.EnumMember,
    detail: `${spec.name}${v === def ? ' (default)' : ''}`,
    documentation: spec.doc,
    sortText: String(i).padStart(3, '0'),
  }));
}

function trainFieldItems(): CompletionItem[] {
  return Object.entries(trainFields).map(([name, specs]) => ({
    label: name,
    kind: CompletionItemKind.Field,
    detail: specs.map((s) => (s.positional ? s.name.toUpperCase() : `${s.name}=`)).join(' '),
    documentation: { kind: MarkupKind.Markdown, value: specs.map(specLine).join('\n') },
    insertText: `${name}: `,
  }));
}
