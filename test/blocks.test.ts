/** Block parameters with defaults and layers passed as block arguments: the checker, the formatter and the language server. */
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { format } from '../src/compiler/format.ts';
import { DocumentChecker } from '../src/compiler/incremental.ts';
import { layers } from '../src/compiler/model.ts';
import { Analysis } from '../src/lsp/analysis.ts';
import { completion } from '../src/lsp/completion.ts';
import { hover } from '../src/lsp/hover.ts';

/** The layers of a model's expansion as the summary describes them. */
const layerTexts = (text: string, model = 0) => {
  const r = check(text);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return layers(r.models[model].root).map((l) => `${l.path} ${l.text}`);
};

function analysis(text: string): Analysis {
  return new Analysis(text, 1, new DocumentChecker('t.cnn').update(text));
}

const MBCONV = 'block mbconv(c, k=3, s=1, e=c*4) {\n  conv e 1x1 -> dwconv k stride=s pad=k//2 -> conv c 1x1\n}\n';

describe('block parameters with defaults', () => {
  it('fill what a use leaves out, worked out from the parameters given', () => {
    const text = `${MBCONV}model m {\n  input 16x32x32\n  mbconv(16) -> mbconv(24, s=2) -> mbconv(8, 5, e=48)\n}\n`;
    expect(layerTexts(text)).toEqual([
      'mbconv1.conv1 conv 64 1x1', 'mbconv1.dwconv1 dwconv 3x3 pad=1', 'mbconv1.conv2 conv 16 1x1',
      'mbconv2.conv1 conv 96 1x1', 'mbconv2.dwconv1 dwconv 3x3 stride=2 pad=1', 'mbconv2.conv2 conv 24 1x1',
      'mbconv3.conv1 conv 48 1x1', 'mbconv3.dwconv1 dwconv 5x5 pad=2', 'mbconv3.conv2 conv 8 1x1',
    ]);
    const r = check(text);
    const origins = r.models[0].root.items.map((n) => (n.kind === 'seq' && n.origin?.kind === 'block' ? n.origin.text : ''));
    expect(origins).toEqual(['mbconv(16, 3, 1, 64)', 'mbconv(24, 3, 2, 96)', 'mbconv(8, 5, 1, 48)']);
  });

  it('report a use that leaves out a parameter without default, with the declaration in the hint', () => {
    const [d] = check(`${MBCONV}model m {\n  input 16x8x8\n  mbconv(k=5)\n}\n`).diagnostics;
    expect([d.code, d.message, d.hint]).toEqual(['CNN2007', 'block mbconv takes 1 to 4 arguments but is given 1', 'missing c: declared as mbconv(c, k=3, s=1, e=c*4)']);
    const [many] = check(`${MBCONV}model m {\n  input 16x8x8\n  mbconv(1, 2, 3, 4, 5)\n}\n`).diagnostics;
    expect(many.message).toBe('block mbconv takes 1 to 4 arguments but is given 5');
    const codes = (use: string) => check(`${MBCONV}model m {\n  input 16x8x8\n  ${use}\n}\n`).diagnostics.map((d) => d.code);
    expect(codes('mbconv(8, q=1)')).toEqual(['CNN2002']);
    expect(codes('mbconv(8, 3, k=5)')).toEqual(['CNN2011']);
  });

  it('are formatted like arguments, and shown with their defaults by hover and completion', () => {
    expect(format('block b( c ,k = 3 , e = c * 4 ) { conv e k }\n')).toBe('block b(c, k=3, e=c*4) {\n  conv e k\n}\n');
    const text = `${MBCONV}model m {\n  input 16x32x32\n  mbconv(16, s=2, )\n}\n`;
    const a = analysis(text);
    const onParam = hover(a, { line: 0, character: 17 });
    expect(onParam?.contents).toMatchObject({ value: '`k`: parameter of block `mbconv(c, k=3, s=1, e=c*4)`, by default `3`' });
    const items = completion(a, { line: 5, character: 2 }, { snippets: true });
    expect(items.find((i) => i.label === 'mbconv')).toMatchObject({ detail: 'block mbconv(c, k=3, s=1, e=c*4)', insertText: 'mbconv(${1:c})' });
    const options = completion(a, { line: 5, character: 18 }, { snippets: true }).map((i) => i.label);
    expect(options).toEqual(expect.arrayContaining(['k=', 'e=']));
    expect(options).not.toContain('s=');
  });
});
