/** Block parameters with defaults and layers passed as block arguments: the checker, the formatter and the language server. */
import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { format } from '../src/compiler/format.ts';
import { DocumentChecker } from '../src/compiler/incremental.ts';
import { layers } from '../src/compiler/model.ts';
import { Analysis } from '../src/lsp/analysis.ts';
import { completion } from '../src/lsp/completion.ts';
import { hover } from '../src/lsp/hover.ts';
import { references } from '../src/lsp/navigation.ts';

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

const UNIT = 'block unit(c, act=relu, pool=maxpool) {\n  conv c 3x3 pad=1 -> act -> pool 2\n}\nblock bnswish { bn -> silu }\n';

describe('layers and blocks as block arguments', () => {
  it('are used where the parameter stands as a step, with the step\'s arguments after their own', () => {
    const text = `${UNIT}model m {\n  input 3x32x32\n  unit(8) -> unit(8, act=hardswish) -> unit(8, leakyrelu(0.2), avgpool) -> unit(8, bnswish, avgpool(stride=1))\n}\n`;
    expect(layerTexts(text)).toEqual([
      'unit1.conv1 conv 8 3x3 pad=1', 'unit1.relu1 relu', 'unit1.maxpool1 maxpool 2x2',
      'unit2.conv1 conv 8 3x3 pad=1', 'unit2.hardswish1 hardswish', 'unit2.maxpool1 maxpool 2x2',
      'unit3.conv1 conv 8 3x3 pad=1', 'unit3.leakyrelu1 leakyrelu 0.2', 'unit3.avgpool1 avgpool 2x2',
      'unit4.conv1 conv 8 3x3 pad=1', 'unit4.bnswish1.bn1 bn', 'unit4.bnswish1.silu1 silu', 'unit4.avgpool1 avgpool 2x2 stride=1',
    ]);
    const r = check(text);
    expect(r.models[0].output).toEqual([8, 3, 3]);
    const origins = r.models[0].root.items.map((n) => (n.kind === 'seq' && n.origin?.kind === 'block' ? n.origin.text : ''));
    expect(origins.slice(2)).toEqual(['unit(8, leakyrelu(0.2), avgpool)', 'unit(8, bnswish, avgpool(stride=1))']);
  });

  it('evaluate their arguments where the use is written, in the caller\'s scope', () => {
    const text = `${UNIT}block outer(c, slope) { unit(c, leakyrelu(slope / 2)) }\nmodel m {\n  input 3x8x8\n  outer(4, 0.5)\n}\n`;
    expect(layerTexts(text)).toContain('outer1.unit1.leakyrelu1 leakyrelu 0.25');
  });

  it('report a number used as a layer, a misspelt layer, and a layer used as a number', () => {
    const use = (args: string) => check(`${UNIT}model m {\n  input 3x8x8\n  unit(${args})\n}\n`).diagnostics.map((d) => `${d.code} ${d.message}${d.hint ? ` (${d.hint})` : ''}`);
    expect(use('8, act=3')).toEqual(['CNN2015 "act" is a block parameter holding 3, not a layer or block (give act a layer (act=relu, act=leakyrelu(0.2)) or a block\'s name)']);
    expect(use('8, act=hardswsh')).toEqual(['CNN2015 "act" is a block parameter holding hardswsh, not a layer or block (did you mean "hardswish"?)']);
    expect(use('8, act=same')[0]).toMatch(/holding same, not a layer or block \(give act a layer/);
    expect(use('relu')).toEqual(['CNN2005 conv filters = relu is not an integer (relu is a layer; a layer can be a block\'s argument and used there as a step)']);
    expect(use('8, pool=maxpool(2)').map((d) => d.slice(0, 7))).toEqual(['CNN2006']); // maxpool 2 2
  });

  it('may not make a block use itself through an argument or a default', () => {
    const [d] = check('block a(f=a) { f }\nmodel m {\n  input 3x8x8\n  a()\n}\n').diagnostics;
    expect(d.code).toBe('CNN2008');
    const deep = check('block a(f, g) { conv 4 1x1 -> f(g, g) }\nmodel m {\n  input 3x8x8\n  a(a, a)\n}\n').diagnostics.map((x) => x.code);
    expect(deep.length).toBeGreaterThan(0);
    expect(deep.every((c) => c === 'CNN2012' || c === 'CNN2022')).toBe(true);
  });

  it('are hovered and found as the parameter where it stands as a step', () => {
    const text = `${UNIT}model m {\n  input 3x8x8\n  unit(8, act=silu)\n}\n`;
    const a = analysis(text);
    const refs = references(a, 'file:///t.cnn', { line: 0, character: 16 }, true).map((l) => l.range.start);
    expect(refs).toEqual([{ line: 0, character: 14 }, { line: 1, character: 22 }, { line: 6, character: 10 }]);
    expect(hover(a, { line: 1, character: 23 })?.contents).toMatchObject({ value: '`act`: parameter of block `unit(c, act=relu, pool=maxpool)`, by default `relu`' });
  });
});

describe('diagnostics raised inside a block', () => {
  it('name the uses they came from, once per mistake, up to ten uses', () => {
    const uses = Array.from({ length: 12 }, (_, i) => `vgg(${i + 1})`).join(' -> ');
    const [d, ...others] = check(`block vgg(c) {\n  conv c 3x3 -> rleu\n}\nmodel m {\n  input 3x64x64\n  ${uses}\n}\n`).diagnostics;
    expect(others).toEqual([]);
    expect(d.code).toBe('CNN2001');
    expect(d.related!.map((r) => r.message)).toEqual(Array.from({ length: 10 }, (_, i) => `in use vgg(${i + 1})`));
  });

  it('are reported from nested uses with each use on the way', () => {
    const [d] = check('block inner(k) {\n  conv 4 k\n}\nblock outer(k) {\n  inner(k + 2)\n}\nmodel m {\n  input 3x4x4\n  outer(3)\n}\n').diagnostics;
    expect([d.code, ...d.related!.map((r) => r.message)]).toEqual(['CNN3001', 'in use inner(5)', 'in use outer(3)']);
  });
});
