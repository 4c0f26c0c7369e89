/**
 * Keeps grammar/REFERENCE.md honest: every `cnn` example that declares a model checks without
 * errors, the generated tables match the registries they come from, and the grammar files
 * match the parser.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { referencePath, updateReference } from '../scripts/layer-table.ts';
import { ebnfPath, htmlPath, renderEbnf, renderHtml } from '../scripts/diagrams.ts';

const reference = readFileSync(referencePath, 'utf8');

interface Example {
  line: number;
  info: string;
  code: string;
}

/** Fenced blocks whose info string starts with `cnn` (```cnn, or ```cnn warning for examples that warn). */
function cnnBlocks(markdown: string): Example[] {
  const examples: Example[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^```(cnn\b.*)$/);
    if (!open) continue;
    const start = i + 1;
    while (i + 1 < lines.length && !lines[i + 1].startsWith('```')) i++;
    examples.push({ line: start, info: open[1].trim(), code: lines.slice(start, i + 1).join('\n') });
    i++;
  }
  return examples;
}

const examples = cnnBlocks(reference).filter((e) => /\bmodel\b/.test(e.code));

describe('REFERENCE.md examples', () => {
  it('has examples to check', () => {
    expect(examples.length).toBeGreaterThan(15);
  });

  it.each(examples.map((e) => [`line ${e.line}`, e] as const))('%s checks without errors', (_name, example) => {
    const result = check(example.code, `REFERENCE.md:${example.line}`);
    const shown = (severity: string) => result.diagnostics.filter((d) => d.severity === severity).map((d) => `${d.code} ${d.message}`);
    expect(shown('error')).toEqual([]);
    // Plain ```cnn examples are clean; only those marked ```cnn warning may warn.
    if (!example.info.includes('warning')) expect(shown('warning')).toEqual([]);
    else expect(shown('warning').length).toBeGreaterThan(0);
    expect(result.models.length).toBeGreaterThan(0);
    for (const m of result.models) expect(m.output).not.toBeNull();
  });
});

describe('REFERENCE.md worked numbers', () => {
  const model = (name: string) => {
    const example = examples.find((e) => new RegExp(`model ${name}\\b`).test(e.code));
    if (!example) throw new Error(`no example declares model ${name}`);
    return check(example.code).models.find((m) => m.name === name)!;
  };

  it('counts parameters, buffers and MACs as the Counted example says', () => {
    const m = model('Counted');
    expect(m.totals.trainable).toBe(1792 + 128 + 650);
    expect(m.totals.nonTrainable).toBe(128);
    expect(m.totals.macs).toBe(1_769_472 + 640);
  });

  it('gives the sizes the Arithmetic example says', () => {
    const m = model('Arithmetic');
    const sizes: number[] = [];
    const visit = (n: typeof m.root): void => {
      for (const item of n.items) {
        if (item.kind === 'layer' && item.output?.length === 3) sizes.push(item.output[1]);
        else if (item.kind === 'seq') visit(item);
      }
    };
    visit(m.root);
    expect(sizes).toEqual([30, 30, 15, 15, 8, 4, 1]);
  });

  it('names layers as the Naming example says', () => {
    const names: string[] = [];
    const visit = (n: unknown): void => {
      const node = n as { kind: string; path: string; items?: unknown[]; branches?: unknown[]; body?: unknown; shortcut?: unknown };
      if (node.kind === 'layer') names.push(node.path);
      for (const child of [...(node.items ?? []), ...(node.branches ?? []), node.body, node.shortcut]) if (child) visit(child);
    };
    visit(model('Naming').root);
    expect(names).toEqual(expect.arrayContaining([
      'stem', 'bn1', 'relu1', 'vgg1.conv1', 'vgg1.relu2', 'vgg1.maxpool1', 'stage2.conv1',
      'residual1.conv1', 'residual1.bn1', 'residual1.shortcut.conv', 'residual1.shortcut.bn',
      'repeat1.0.conv1', 'repeat1.1.conv1', 'concat1.0.conv1', 'concat1.1.conv2', 'conv1', 'head',
    ]));
  });
});

describe('generated documentation is up to date', () => {
  it('REFERENCE.md tables match the layer registry, train fields and diagnostic catalog', () => {
    // If this fails: node --import tsx scripts/layer-table.ts
    expect(updateReference(reference)).toBe(reference);
  });

  it('grammar.ebnf and syntax-diagrams.html match the parser', () => {
    // If this fails: npm run diagrams
    expect(readFileSync(ebnfPath, 'utf8')).toBe(renderEbnf());
    const html = readFileSync(htmlPath, 'utf8');
    expect([renderHtml(), renderHtml({ local: true })]).toContain(html);
  });
});
