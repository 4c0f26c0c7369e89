/** Imports between files and the standard library (stdlib/): resolution, diagnostics, the CLI and the language server. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { layers, type CheckedModel } from '../src/compiler/model.ts';
import type { WeightSource, WeightTensor } from '../src/compiler/emit/inference.ts';
import { safetensors, type Entry } from './helpers/safetensors.ts';
import { uniform } from './helpers/random.ts';
import { format } from '../src/compiler/format.ts';
import { LIBRARY_DIR, nodeHost, type ImportHost } from '../src/compiler/host.ts';
import { DocumentChecker } from '../src/compiler/incremental.ts';
import { FILE_STRIDE } from '../src/compiler/source.ts';
import { printDiagnostics } from '../src/cli/report.ts';
import { Analysis } from '../src/lsp/analysis.ts';
import { completion } from '../src/lsp/completion.ts';
import { documentDiagnostics } from '../src/lsp/diagnostics.ts';
import { definition } from '../src/lsp/navigation.ts';
import { cnncFromSources } from './helpers/cli-sources.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cnnc-imports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes files into a fresh folder of `dir`; returns the folder. */
let folders = 0;
function files(contents: Record<string, string>): string {
  const at = path.join(dir, String(folders++));
  mkdirSync(at, { recursive: true });
  for (const [name, text] of Object.entries(contents)) {
    mkdirSync(path.dirname(path.join(at, name)), { recursive: true });
    writeFileSync(path.join(at, name), text);
  }
  return at;
}

const checkAt = (file: string) => check(readFileSync(file, 'utf8'), file);

/** Each diagnostic as `FILE:LINE:COL CODE message`, the file relative to its folder. */
function placed(result: ReturnType<typeof check>, base: string): string[] {
  return result.diagnostics.map((d) => {
    const { source, position } = result.sources.locate(d.span.start);
    return `${path.relative(base, source.path ?? source.name)}:${position.line + 1}:${position.character + 1} ${d.code} ${d.message}`;
  });
}

const BLOCKS = `block stage(c) {
  conv c 3x3 pad=same -> bn -> relu -> maxpool 2
}
`;
const MODEL = `model M {
  input 3x32x32
  stage(16) -> stage(32) -> gap -> flatten -> dense 10
}
`;

describe('imports of files', () => {
  it('makes an imported block usable as if declared in the file, with the same counts', () => {
    const at = files({ 'lib/blocks.cnn': BLOCKS, 'main.cnn': `import "lib/blocks.cnn"\n${MODEL}` });
    const imported = checkAt(path.join(at, 'main.cnn'));
    const inline = check(`${BLOCKS}${MODEL}`);
    expect(imported.diagnostics).toEqual([]);
    expect(imported.models[0].totals).toEqual(inline.models[0].totals);
    expect(imported.models[0].output).toEqual([10]);
  });

  it('reads a file imported by two files once, and imports relative to the importing file', () => {
    const at = files({
      'a/base.cnn': BLOCKS,
      'a/left.cnn': 'import "base.cnn"\nblock left(c) { stage(c) }\n',
      'right.cnn': 'import "a/base.cnn"\nblock right(c) { stage(c) }\n',
      'main.cnn': 'import "a/left.cnn"\nimport "right.cnn"\nmodel M { input 3x8x8 left(4) -> right(8) -> gap }\n',
    });
    const r = checkAt(path.join(at, 'main.cnn'));
    expect(r.diagnostics).toEqual([]);
    expect(r.sources.sources.map((s) => path.relative(at, s.path!))).toEqual(['main.cnn', 'a/left.cnn', 'a/base.cnn', 'right.cnn']);
    expect(r.models[0].output).toEqual([8, 1, 1]);
  });

  it('reports missing files, cycles, repeated imports and name clashes at the import line', () => {
    const at = files({
      'main.cnn': 'import "missing.cnn"\nimport "b.cnn"\nimport "b.cnn"\nimport "c.cnn"\nblock stage(c) { relu }\nmodel M { input 3x8x8 stage(1) }\n',
      'b.cnn': 'import "main.cnn"\n' + BLOCKS,
      'c.cnn': 'block stage(c) { relu }\nblock own(c) { relu }\nblock own(c) { relu }\nblock relu { bn }\n',
    });
    expect(placed(checkAt(path.join(at, 'main.cnn')), at)).toEqual([
      `main.cnn:1:8 CNN2101 cannot import "${path.join(at, 'missing.cnn')}": cannot read the file (ENOENT)`,
      `main.cnn:2:8 CNN2104 block "stage" of ${path.join(at, 'b.cnn')} clashes with the block of the same name in ${path.join(at, 'main.cnn')}`,
      'main.cnn:3:8 CNN2103 "' + path.join(at, 'b.cnn') + '" is already imported by this file',
      `main.cnn:4:8 CNN2104 block "stage" of ${path.join(at, 'c.cnn')} clashes with the block of the same name in ${path.join(at, 'main.cnn')}`,
      `b.cnn:1:8 CNN2102 import cycle: ${path.join(at, 'main.cnn')} → ${path.join(at, 'b.cnn')} → ${path.join(at, 'main.cnn')}; files cannot import themselves`,
      'c.cnn:3:7 CNN2009 block "own" is declared twice',
      'c.cnn:4:7 CNN2009 block (shadowing a layer kind) "relu" is declared twice',
    ]);
  });

  it('names imported files relative to the file checked, as the command line gave it', () => {
    const at = files({ 'sub/blocks.cnn': 'block broken(c) {\n  conv c 9x9\n}\nblock typo { rleu }\n', 'main.cnn': 'import "sub/blocks.cnn"\nmodel M { input 3x4x4 broken(2) }\n' });
    const rel = path.relative(process.cwd(), path.join(at, 'main.cnn'));
    const r = check(readFileSync(rel, 'utf8'), rel);
    let out = '';
    printDiagnostics({ write: (t: string) => (out += t) }, r.sources, r.diagnostics);
    const shown = path.join(path.dirname(rel), 'sub', 'blocks.cnn');
    // Reported at the use, which the file checked can change, with the place in the imported file.
    expect(out).toContain(`${rel}:2:23: error CNN3001: conv kernel 9×9 is larger than its padded input 4×4\n   2 | model M { input 3x4x4 broken(2) }\n     |                       ^^^^^^^^^\n     hint: pad the input (pad=same) or use a smaller kernel\n     ${shown}:2:10: in broken(2)`);
    // Only what a model uses is checked; the unused block's typo is not reported.
    expect(r.diagnostics).toHaveLength(1);
  });

  it('reports an imported file\'s syntax errors in that file, with the import as related', () => {
    const at = files({ 'bad.cnn': 'block b(c) {\n  relu ->\n}\n', 'main.cnn': '\nimport "bad.cnn"\nmodel M { input 3x8x8 relu }\n' });
    const r = checkAt(path.join(at, 'main.cnn'));
    expect(placed(r, at)).toEqual([expect.stringMatching(/^bad\.cnn:3:1 CNN1002 /)]);
    const related = r.diagnostics[0].related!.map((x) => r.sources.locate(x.span.start));
    expect(related.map((x) => [x.source.base, x.position.line])).toEqual([[0, 1]]);
  });

  it('refuses more than 256 imported files, at the import that goes past the limit', () => {
    const chain: Record<string, string> = {};
    for (let i = 0; i < 300; i++) chain[`f${i}.cnn`] = `import "f${i + 1}.cnn"\n`;
    chain['f300.cnn'] = '';
    chain['main.cnn'] = 'import "f0.cnn"\nmodel M { input 3 }\n';
    const at = files(chain);
    const codes = checkAt(path.join(at, 'main.cnn')).diagnostics.filter((d) => d.code !== 'CNN2014').map((d) => [d.code, d.message]);
    expect(codes).toEqual([['CNN2106', 'the imports reach more than 256 files; the rest are not read']]);
  });

  it('keeps imports in the formatter, in a row, `std.module` without spaces', () => {
    expect(format('import   "a.cnn"  # blocks\nimport std . resnet\n\n\nmodel M { input 3 dense 2 }')).toBe(
      'import "a.cnn"  # blocks\nimport std.resnet\n\nmodel M {\n  input 3\n  dense 2\n}\n');
  });
});

/** n ConvNeXt blocks on c channels, the first being block `first` of ConvNeXt-T's 18. */
const convnextBlocks = (c: number, first: number, n: number) =>
  Array.from({ length: n }, (_, i) => `convnext_block(${c}, 0.1 * ${first + i} / 17)`).join(' -> ');
// torchvision 0.14.1's parameter counts; every block of the library is used by one of these.
const STD_NETWORKS: [string, string, number][] = [
  ['resnet18', `conv 64 7x7 stride=2 pad=3 bias=off -> bn -> relu -> maxpool 3 stride=2 pad=1
    -> basic_stage(64, 2, 1, identity) -> basic_stage(128, 2, 2, project)
    -> basic_stage(256, 2, 2, project) -> basic_stage(512, 2, 2, project)
    -> gap -> flatten -> dense 1000`, 11_689_512],
  ['resnet50', `conv 64 7x7 stride=2 pad=3 bias=off -> bn -> relu -> maxpool 3 stride=2 pad=1
    -> bottleneck_stage(64, 3, 1) -> bottleneck_stage(128, 4, 2) -> bottleneck_stage(256, 6, 2) -> bottleneck_stage(512, 3, 2)
    -> gap -> flatten -> dense 1000`, 25_557_032],
  ['resnet34 (the blocks themselves)', `conv 64 7x7 stride=2 pad=3 bias=off -> bn -> relu -> maxpool 3 stride=2 pad=1
    -> repeat 3 { basic_block(64, 1, identity) }
    -> basic_block(128, 2, project) -> repeat 3 { basic_block(128, 1, identity) }
    -> basic_block(256, 2, project) -> repeat 5 { basic_block(256, 1, identity) }
    -> basic_block(512, 2, project) -> repeat 2 { basic_block(512, 1, identity) }
    -> gap -> flatten -> dense 1000`, 21_797_672],
  ['mobilenet_v2', `conv 32 3x3 stride=2 pad=1 bias=off -> bn -> relu6 -> inverted_bottleneck_t1(16, 1)
    -> inverted_bottleneck(96, 24, 2) -> inverted_residual(144, 24)
    -> inverted_bottleneck(144, 32, 2) -> repeat 2 { inverted_residual(192, 32) }
    -> inverted_bottleneck(192, 64, 2) -> repeat 3 { inverted_residual(384, 64) }
    -> inverted_bottleneck(384, 96, 1) -> repeat 2 { inverted_residual(576, 96) }
    -> inverted_bottleneck(576, 160, 2) -> repeat 2 { inverted_residual(960, 160) }
    -> inverted_bottleneck(960, 320, 1) -> conv 1280 1x1 bias=off -> bn -> relu6
    -> gap -> flatten -> dropout 0.2 -> dense 1000`, 3_504_872],
  ['efficientnet_b0', `conv 32 3x3 stride=2 pad=1 bias=off -> bn -> silu -> mbconv_t1(32, 8, 3, 1, 16)
    -> mbconv(96, 4, 3, 2, 24) -> mbconv_residual(144, 6, 3, 24)
    -> mbconv(144, 6, 5, 2, 40) -> mbconv_residual(240, 10, 5, 40)
    -> mbconv(240, 10, 3, 2, 80) -> repeat 2 { mbconv_residual(480, 20, 3, 80) }
    -> mbconv(480, 20, 5, 1, 112) -> repeat 2 { mbconv_residual(672, 28, 5, 112) }
    -> mbconv(672, 28, 5, 2, 192) -> repeat 3 { mbconv_residual(1152, 48, 5, 192) }
    -> mbconv(1152, 48, 3, 1, 320) -> conv 1280 1x1 bias=off -> bn -> silu
    -> gap -> flatten -> dropout 0.2 -> dense 1000`, 5_288_548],
  ['mobilenet_v3_small', `conv 16 3x3 stride=2 pad=1 bias=off -> bn eps=0.001 momentum=0.01 -> hardswish
    -> bneck_re_se_t1(16, 8, 3, 2, 16)
    -> bneck_re(72, 3, 2, 24) -> residual { bneck_re(88, 3, 1, 24) }
    -> bneck_hs_se(96, 24, 5, 2, 40) -> repeat 2 { residual { bneck_hs_se(240, 64, 5, 1, 40) } }
    -> bneck_hs_se(120, 32, 5, 1, 48) -> residual { bneck_hs_se(144, 40, 5, 1, 48) }
    -> bneck_hs_se(288, 72, 5, 2, 96) -> repeat 2 { residual { bneck_hs_se(576, 144, 5, 1, 96) } }
    -> conv 576 1x1 bias=off -> bn eps=0.001 momentum=0.01 -> hardswish
    -> gap -> flatten -> dense 1024 -> hardswish -> dropout 0.2 -> dense 1000`, 2_542_856],
  ['mobilenet_v3_small (bneck, bneck_se: torchvision\'s SE widths)', `conv 16 3x3 stride=2 pad=1 bias=off -> bn eps=0.001 momentum=0.01 -> hardswish
    -> bneck_se_t1(16, 3, 2, 16)
    -> bneck(72, 3, 2, 24) -> residual { bneck(88, 3, 1, 24) }
    -> bneck_se(96, 5, 2, 40, hardswish) -> repeat 2 { residual { bneck_se(240, 5, 1, 40, hardswish) } }
    -> bneck_se(120, 5, 1, 48, hardswish) -> residual { bneck_se(144, 5, 1, 48, hardswish) }
    -> bneck_se(288, 5, 2, 96, hardswish) -> repeat 2 { residual { bneck_se(576, 5, 1, 96, hardswish) } }
    -> conv 576 1x1 bias=off -> bn eps=0.001 momentum=0.01 -> hardswish
    -> gap -> flatten -> dense 1024 -> hardswish -> dropout 0.2 -> dense 1000`, 2_542_856],
  ['mobilenet_v3_large', `conv 16 3x3 stride=2 pad=1 bias=off -> bn eps=0.001 momentum=0.01 -> hardswish
    -> residual { bneck_re_t1(3, 1, 16) }
    -> bneck_re(64, 3, 2, 24) -> residual { bneck_re(72, 3, 1, 24) }
    -> bneck_re_se(72, 24, 5, 2, 40) -> repeat 2 { residual { bneck_re_se(120, 32, 5, 1, 40) } }
    -> bneck_hs(240, 3, 2, 80) -> residual { bneck_hs(200, 3, 1, 80) } -> repeat 2 { residual { bneck_hs(184, 3, 1, 80) } }
    -> bneck_hs_se(480, 120, 3, 1, 112) -> residual { bneck_hs_se(672, 168, 3, 1, 112) }
    -> bneck_hs_se(672, 168, 5, 2, 160) -> repeat 2 { residual { bneck_hs_se(960, 240, 5, 1, 160) } }
    -> conv 960 1x1 bias=off -> bn eps=0.001 momentum=0.01 -> hardswish
    -> gap -> flatten -> dense 1280 -> hardswish -> dropout 0.2 -> dense 1000`, 5_483_032],
  // torchvision's stochastic-depth probability grows linearly over the 18 blocks, from 0 to 0.1.
  ['convnext_tiny', `convnext_stem(96) -> ${convnextBlocks(96, 0, 3)}
    -> convnext_downsample(192) -> ${convnextBlocks(192, 3, 3)}
    -> convnext_downsample(384) -> ${convnextBlocks(384, 6, 9)}
    -> convnext_downsample(768) -> ${convnextBlocks(768, 15, 3)}
    -> convnext_head(1000)`, 28_589_128],
  ['shufflenet_v2_x1_0', `conv 24 3x3 stride=2 pad=1 bias=off -> bn -> relu -> maxpool 3 stride=2 pad=1
    -> shuffle_stage(58, 4) -> shuffle_stage(116, 8) -> shuffle_stage(232, 4)
    -> conv 1024 1x1 bias=off -> bn -> relu -> gap -> flatten -> dense 1000`, 2_278_604],
  ['squeezenet1_1', `conv 64 3x3 stride=2 pad=1 -> relu -> maxpool 3 stride=2
    -> fire(16, 64, 64) -> fire(16, 64, 64) -> maxpool 3 stride=2
    -> fire(32, 128, 128) -> fire(32, 128, 128) -> maxpool 3 stride=2
    -> fire(48, 192, 192) -> fire(48, 192, 192) -> fire(64, 256, 256) -> fire(64, 256, 256)
    -> dropout 0.5 -> conv 1000 1x1 -> relu -> gap -> flatten`, 1_235_496],
  ['densenet121', `conv 64 7x7 stride=2 pad=3 bias=off -> bn -> relu -> maxpool 3 stride=2 pad=1
    -> dense_block(6, 32, 4) -> transition(128) -> dense_block(12, 32, 4) -> transition(256)
    -> dense_block(24, 32, 4) -> transition(512) -> dense_block(16, 32, 4)
    -> bn -> relu -> gap -> flatten -> dense 1000`, 7_978_856],
  ['squeeze-and-excitation (torchvision.ops.SqueezeExcitation(64, 16) after a conv)', 'conv 64 3x3 -> squeeze_excite(64, 16) -> gap -> flatten', 1_792 + 64 * 16 + 16 + 16 * 64 + 64],
];

describe('the standard library', () => {
  const modules = readdirSync(LIBRARY_DIR).filter((f) => f.endsWith('.cnn')).sort();

  it('has every module listed and documented, and every block of it checks', () => {
    expect([...nodeHost.library().keys()]).toEqual(modules.map((f) => f.slice(0, -4)));
    const doc = readFileSync(new URL('../docs/stdlib.md', import.meta.url), 'utf8');
    for (const f of modules) {
      const r = checkAt(path.join(LIBRARY_DIR, f));
      // A library file declares no model (CNN2018): only that, and nothing else, is reported.
      expect(r.diagnostics.map((d) => d.code), f).toEqual(['CNN2018']);
      const text = readFileSync(path.join(LIBRARY_DIR, f), 'utf8');
      const declared = [...text.matchAll(/^block (\w+)\(([^)]*)\)/gm)].map((m) => `${m[1]}(${m[2]})`);
      expect(declared.length, f).toBe(r.ast.blocks.length);
      for (const signature of declared) expect(doc, `${f}: ${signature}`).toContain(signature);
    }
  });

  it('is written as cnnc fmt prints it', () => {
    for (const f of modules) {
      const text = readFileSync(path.join(LIBRARY_DIR, f), 'utf8');
      expect(format(text), f).toBe(text);
    }
  });

  it('docs/stdlib.md: every example checks without errors', () => {
    const doc = readFileSync(new URL('../docs/stdlib.md', import.meta.url), 'utf8');
    const examples = [...doc.matchAll(/```cnn\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(examples.length).toBeGreaterThanOrEqual(2);
    for (const text of examples) expect(check(text, 'example.cnn').diagnostics, text).toEqual([]);
  });

  it('reports an unknown library or module, with a suggestion', () => {
    const r = check('import std.resnt\nimport stdlib\nmodel M { input 3 dense 1 }');
    expect(r.diagnostics.map((d) => [d.code, d.message, d.hint])).toEqual([
      ['CNN2105', 'there is no library "std.resnt"', expect.stringMatching(/^did you mean "std\.resnet"\? the modules of std are /)],
      ['CNN2105', 'there is no library "stdlib"', expect.stringContaining('import std')],
    ]);
  });

  for (const [name, chain, params] of STD_NETWORKS) {
    it(`builds ${name} from std blocks with torchvision's parameter count`, () => {
      const r = check(`import std\nmodel M {\n  input 3x224x224\n  ${chain}\n}\n`);
      expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      expect(r.models[0].totals.trainable).toBe(params);
    });
  }

  it('leaves out parameters with defaults (torchvision\'s): the same networks', () => {
    const totals = (chain: string) => {
      const r = check(`import std\nmodel M {\n  input 3x64x64\n  ${chain}\n}\n`);
      expect(r.diagnostics, chain).toEqual([]);
      return r.models[0].totals;
    };
    expect(totals('conv 64 3x3 -> basic_stage(64, 2)')).toEqual(totals('conv 64 3x3 -> basic_stage(64, 2, 1, identity)'));
    expect(totals('dense_block(2) -> transition(64)')).toEqual(totals('dense_block(2, 32, 4) -> transition(64)'));
    expect(totals('convnext_stem(32) -> convnext_block(32) -> convnext_head')).toEqual(totals('convnext_stem(32) -> convnext_block(32, 0) -> convnext_head(1000)'));
    expect(totals('conv 16 1x1 -> bneck(64, 5, 2, 24, hardswish, squeeze_excite(64, 16, scale=hardsigmoid))')).toEqual(totals('conv 16 1x1 -> bneck_hs_se(64, 16, 5, 2, 24)'));
  });

  it('takes stages of one block (repeat 0 for the rest): the first block alone', () => {
    const totals = (chain: string) => {
      const r = check(`import std\nmodel M {\n  input 64x16x16\n  ${chain}\n}\n`);
      expect(r.diagnostics, chain).toEqual([]);
      return [r.models[0].totals, r.models[0].output];
    };
    expect(totals('basic_stage(64, 1, 2, project)')).toEqual(totals('basic_block(64, 2, project)'));
    expect(totals('bottleneck_stage(16, 1, 1)')).toEqual(totals('bottleneck(16, 1, project)'));
    expect(totals('shuffle_stage(32, 1)')).toEqual(totals('shuffle_down_unit(32)'));
    const [none, output] = totals('dense_block(0, 32, 4)') as [{ trainable: number; macs: number }, number[]];
    expect([none.trainable, none.macs, output]).toEqual([0, 0, [64, 16, 16]]);
  });

  it('uses every block of the library in the models above', () => {
    const used = STD_NETWORKS.map(([, chain]) => chain).join(' ');
    for (const f of modules) for (const b of checkAt(path.join(LIBRARY_DIR, f)).ast.blocks) {
      if (['basic_block', 'bottleneck', 'squeeze_excite_silu', 'squeeze_excite_hardsigmoid', 'dense_layer', 'shuffle_branch', 'shuffle_unit', 'shuffle_down_unit', 'bneck', 'bneck_t1'].includes(b.name)) continue; // used by the stages and blocks above
      expect(used, b.name).toMatch(new RegExp(`\\b${b.name}\\(`));
    }
  });
});

/**
 * The zoo's networks (examples/zoo, whose logits are torchvision's: weights-torch.test.ts) written
 * with std blocks compute the same: the zoo model's parameters, random (batch-norm statistics and
 * layer scales too), saved as a state dict under the zoo's names and moved into the std model
 * (compile --weights' matcher: by structure, or by name where the zoo file uses the same std
 * blocks), give the same logits. At 3x64x64 to keep it quick:
 * every one of them pools globally at the end.
 */
describe('std blocks build the zoo\'s networks exactly', () => {
  const zooFiles = new Set(readdirSync(new URL('../examples/zoo', import.meta.url)).map((f) => f.replace(/\.cnn$/, '')));
  const input = 'input 3x64x64';
  const compile = async (model: CheckedModel, init: WeightSource) => {
    const { compileInference } = await import('../src/compiler/emit/inference.ts');
    return compileInference(model, { init }).bytes;
  };
  /** Random values for every parameter, seeded by its place; variances and scales around 1. */
  const randomParams = (model: CheckedModel) => {
    const values = new Map<string, WeightTensor>();
    for (const [i, layer] of layers(model.root).entries()) for (const spec of layer.params) {
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const fanIn = spec.init.kind === 'constant' ? 0 : spec.init.fanIn;
      const [lo, hi] = fanIn > 0 ? [-1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn)] : /running_var|^weight$/.test(spec.name) ? [0.5, 1.5] : [-0.2, 0.2];
      values.set(`${layer.path}.${spec.name}`, { dims: spec.shape, data: uniform(1000 * i + spec.name.length, count, lo, hi) });
    }
    return values;
  };
  const run = async (bytes: Uint8Array, x: Float32Array) => {
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
    try {
      return (await session.run({ input: new ort.Tensor('float32', x, [1, 3, 64, 64]) })).logits.data as Float32Array;
    } finally { await session.release(); }
  };
  for (const [name, chain] of STD_NETWORKS.filter(([n]) => zooFiles.has(n.split(' ')[0]))) {
    it(`${name}: the std version takes the zoo model's weights by structure and gives its logits`, async () => {
      const file = `${name.split(' ')[0]}.cnn`;
      const zooText = readFileSync(new URL(`../examples/zoo/${file}`, import.meta.url), 'utf8').replace(/^(\s*)input \S+/m, `$1${input}`);
      const zoo = check(zooText, file).models[0];
      const std = check(`import std\nmodel M {\n  ${input}\n  ${chain}\n}\n`).models[0];
      expect([zoo.diagnostics, std.diagnostics]).toEqual([[], []]);
      const params = randomParams(zoo);
      const dict = path.join(files({}), 'zoo.safetensors');
      writeFileSync(dict, safetensors([...params].map(([n, t]): Entry => [n, 'F32', [...t.dims], new Uint8Array(t.data.buffer)])));
      const { loadModelWeights } = await import('../src/runtime/weights/index.ts');
      const { match } = loadModelWeights(std, dict, { transfer: false });
      const x = uniform(7, 3 * 64 * 64, -2, 2);
      const want = await run(await compile(zoo, params), x);
      const moved = match.tensors;
      const got = await run(await compile(std, moved), x);
      const scale = Math.max(...want.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]))) / scale).toBeLessThan(1e-5);
    });
  }
});

describe('commands and the language server read imports', () => {
  it('summary, compile and check --json resolve imports', async () => {
    const at = files({ 'blocks.cnn': BLOCKS, 'main.cnn': `import "blocks.cnn"\nimport std.se\n${MODEL.replace('-> gap', '-> squeeze_excite(32, 8) -> gap')}` });
    const main = path.join(at, 'main.cnn');
    const summary = await cnncFromSources('summary', main);
    expect(summary.code, summary.stderr).toBe(0);
    expect(summary.stdout).toMatch(/squeeze_excite/);
    const compiled = await cnncFromSources('compile', main, '-o', path.join(at, 'm.onnx'));
    expect(compiled.code, compiled.stderr).toBe(0);
    writeFileSync(path.join(at, 'blocks.cnn'), 'block stage(c) { conv c 99x99 }\n');
    const json = await cnncFromSources('check', '--json', main);
    expect(json.code).toBe(1);
    const d = JSON.parse(json.stdout).files[0].diagnostics[0];
    expect([d.file, d.code, d.range.start.line, d.range.start.column]).toEqual([main, 'CNN3001', 5, 3]);
    expect([d.related[0].file, d.related[0].range.start.line, d.related[0].range.start.column]).toEqual([path.join(at, 'blocks.cnn'), 1, 25]);
  });

  it('shows a diagnostic met inside an imported block at its use, an imported file\'s own at the import line, goes to definitions there and completes imported blocks', () => {
    const at = files({ 'blocks.cnn': BLOCKS + 'block broken(c) { conv c 99x99 }\nblock dup { relu }\nblock dup { relu }\n' });
    const text = `import "blocks.cnn"\nimport std.squeezenet\nmodel M {\n  input 3x32x32\n  stage(16) -> broken(2) -> fire(4, 8, 8) -> gap\n}\n`;
    const main = path.join(at, 'main.cnn');
    const uri = pathToFileURL(main).href;
    const checker = new DocumentChecker('main.cnn', { path: main });
    const analysis = new Analysis(text, 1, checker.update(text));
    const [d, dup] = documentDiagnostics(analysis, uri);
    expect(d.range).toEqual({ start: { line: 4, character: 15 }, end: { line: 4, character: 24 } });
    expect(d.message).toMatch(/^conv kernel 99×99 is larger/);
    expect(d.relatedInformation![0]).toEqual({ message: 'in broken(2)', location: { uri: pathToFileURL(path.join(at, 'blocks.cnn')).href, range: { start: { line: 3, character: 25 }, end: { line: 3, character: 30 } } } });
    expect(dup.range).toEqual({ start: { line: 0, character: 7 }, end: { line: 0, character: 19 } });
    expect(dup.message).toBe('blocks.cnn:6:7: block "dup" is declared twice');
    expect(dup.relatedInformation![0].location).toEqual({ uri: pathToFileURL(path.join(at, 'blocks.cnn')).href, range: { start: { line: 5, character: 6 }, end: { line: 5, character: 9 } } });
    expect(definition(analysis, uri, { line: 4, character: 3 })).toEqual({ uri: pathToFileURL(path.join(at, 'blocks.cnn')).href, range: { start: { line: 0, character: 6 }, end: { line: 0, character: 11 } } });
    expect(definition(analysis, uri, { line: 4, character: 30 })!.uri).toBe(pathToFileURL(path.join(LIBRARY_DIR, 'squeezenet.cnn')).href);
    const labels = completion(analysis, { line: 4, character: 2 }, { snippets: false }).map((c) => c.label);
    expect(labels).toEqual(expect.arrayContaining(['stage', 'broken', 'fire']));
  });

  it('checks incrementally with imports as the full check does, and sees an imported file change', () => {
    let blocks = BLOCKS;
    const at = files({});
    const host: ImportHost = { read: (f) => (f === path.join(at, 'blocks.cnn') ? blocks : nodeHost.read(f)), library: nodeHost.library };
    const main = path.join(at, 'main.cnn');
    const checker = new DocumentChecker('main.cnn', { path: main, host });
    const full = (text: string) => check(text, 'main.cnn', { path: main, host });
    let text = `import "blocks.cnn"\n${MODEL}`;
    const same = () => {
      const a = checker.update(text);
      const b = full(text);
      expect(a.diagnostics).toEqual(b.diagnostics);
      expect(a.models.map((m) => m.totals)).toEqual(b.models.map((m) => m.totals));
      return a;
    };
    expect(same().diagnostics).toEqual([]);
    blocks = 'block stage(c) { conv c 99x99 }\n';
    // At the use (stage(16), in the file checked), the conv in blocks.cnn as related.
    expect(same().diagnostics.map((d) => [d.code, d.span.start, d.related![0].span.start >= FILE_STRIDE])).toEqual([['CNN3001', 48, true]]);
    text = text.replace('stage(16)', 'stage(8)'); // an edit inside a step: the incremental path, imported spans left in place
    expect(same().diagnostics.map((d) => [d.span.end, d.related![0].span.start - FILE_STRIDE])).toEqual([[56, 24]]);
    text = '# moved\n' + text;
    same();
    blocks = BLOCKS;
    expect(same().diagnostics).toEqual([]);
  });
});

describe('every command reads the imported files, as compile does', () => {
  const project = () => files({ 'lib/blocks.cnn': BLOCKS, 'main.cnn': `import "lib/blocks.cnn"\nimport std.se\n${MODEL.replace('-> gap', '-> squeeze_excite(32, 8) -> gap')}` });

  it('names an ONNX node of an imported block with the imported file and line', async () => {
    const { compileInference } = await import('../src/compiler/emit/inference.ts');
    const { decodeModel } = await import('../src/compiler/onnx/builder.ts');
    const r = checkAt(path.join(project(), 'main.cnn'));
    const bytes = compileInference(r.models[0], { file: 'main.cnn', source: r.sources }).bytes;
    const names = decodeModel(bytes).graph!.node!.map((n) => n.name ?? '');
    expect(names).toContain('stage1.conv1 (lib/blocks.cnn:2)');
    expect(names.some((n) => n.includes('(std/se.cnn:8)'))).toBe(true);
    expect(names.some((n) => n.includes('main.cnn:5'))).toBe(true);
  });

  it('export --torch: the steps of imported blocks carry their own file, line and text', async () => {
    const { modelPy } = await import('../src/compiler/emit/torch/model-py.ts');
    const main = path.join(project(), 'main.cnn');
    const r = checkAt(main);
    const text = modelPy({ file: main, source: r.sources, models: r.models, model: r.models[0] });
    expect(text).toContain('"""stage(16): block stage (lib/blocks.cnn:1), 3×32×32 -> 16×16×16."""');
    expect(text).toContain('self.conv1 = nn.Conv2d(3, 16, 3, padding=1)  # lib/blocks.cnn:2  conv c 3x3 pad=same\n');
    expect(text).toContain('block squeeze_excite (std/se.cnn:');
    expect(text).toMatch(/nn\.Conv2d\(32, 8, 1\),  # std\/se\.cnn:\d+  conv squeeze 1x1\n/);
    expect(text).toContain('self.stage1 = Stage_16()  # main.cnn:5  stage(16)\n');
    // Every layer's comment is its own step's line in its own file.
    for (const layer of layers(r.models[0].root)) {
      const { source, position } = r.sources.locate(layer.span.start);
      expect(text, layer.path).toContain(`  # ${source.label}:${position.line + 1}  `);
    }
  });

  it('hashes the imported files with the file: an imported change changes the hash in the ONNX metadata and checkpoints', async () => {
    const { compileInference, METADATA_KEYS, readModelMetadata, sourceHash } = await import('../src/compiler/emit/inference.ts');
    const at = project();
    const main = path.join(at, 'main.cnn');
    const before = checkAt(main);
    // A file without imports keeps the hash of its text (checkpoints written before imports still match).
    expect(sourceHash(check(MODEL, 'm.cnn').sources)).toBe(sourceHash(MODEL));
    expect(sourceHash(before.sources)).not.toBe(sourceHash(before.text));
    writeFileSync(path.join(at, 'lib/blocks.cnn'), BLOCKS.replace('maxpool 2', 'avgpool 2'));
    const after = checkAt(main);
    expect(after.text).toBe(before.text);
    expect(sourceHash(after.sources)).not.toBe(sourceHash(before.sources));
    const meta = readModelMetadata(compileInference(after.models[0], { file: main, source: after.sources }).bytes);
    expect(meta[METADATA_KEYS.sourceHash]).toBe(sourceHash(after.sources));
    const compiled = await cnncFromSources('compile', main, '--train', '-o', path.join(at, 'train'));
    expect(compiled.code, compiled.stderr).toBe(0);
    const { loadCheckpoint } = await import('../src/runtime/checkpoint.ts');
    expect((await loadCheckpoint(path.join(at, 'train', 'init.ckpt'))).sourceHash).toBe(sourceHash(after.sources));
  });

  it('train builds its graphs from the imported files, and --resume notices an imported file that changed', async () => {
    const { trainCommand } = await import('../src/cli/train.ts');
    const { OrtTrainRunner } = await import('../src/runtime/train-runner.ts');
    const { emitTrainStep } = await import('../src/compiler/emit/train.ts');
    const { trainPlan } = await import('../src/compiler/emit/train-plan.ts');
    const { decodeModel } = await import('../src/compiler/onnx/builder.ts');
    const sharp = (await import('sharp')).default;
    const at = files({
      'blocks.cnn': 'block tiny(c) {\n  conv c 3x3 pad=same -> relu\n}\n',
      'm.cnn': 'import "blocks.cnn"\nmodel M {\n  input 1x4x4\n  tiny(2) -> flatten -> dense 2\n  train {\n    batch: 4\n    epochs: 1\n  }\n}\n',
    });
    for (const [cls, value] of [['dark', 20], ['light', 230]] as const) {
      mkdirSync(path.join(at, 'data', cls), { recursive: true });
      for (let i = 0; i < 4; i++) {
        await sharp(Buffer.alloc(16, value + i), { raw: { width: 4, height: 4, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(at, 'data', cls, `${i}.png`));
      }
    }
    const given: Parameters<typeof OrtTrainRunner.create>[2][] = [];
    const run = async (more: { resume?: boolean; epochs?: string }) => {
      const lines: string[] = [];
      const log = { isTTY: false, write: (s: string) => { lines.push(s); return true; } };
      await trainCommand(path.join(at, 'm.cnn'), { data: path.join(at, 'data'), out: path.join(at, 'run'), threads: '1', valSplit: '0.25', ...more }, {
        log, print: () => {}, handleSigint: false,
        createTrainRunner: (model, config, opts) => (given.push(opts), OrtTrainRunner.create(model, config, opts)),
      });
      return lines.join('');
    };
    await run({});
    const [opts] = given;
    expect(opts.file).toBe('m.cnn');
    const r = checkAt(path.join(at, 'm.cnn'));
    const names = decodeModel(emitTrainStep(trainPlan(r.models[0], r.models[0].train), { file: opts.file, source: opts.source })).graph!.node!.map((n) => n.name ?? '');
    expect(names).toContain('tiny1.conv1 (blocks.cnn:2)');
    expect(await run({ resume: true, epochs: '2' })).not.toMatch(/changed since/);
    writeFileSync(path.join(at, 'blocks.cnn'), '# the same block, with a comment\nblock tiny(c) {\n  conv c 3x3 pad=same -> relu\n}\n');
    expect(await run({ resume: true, epochs: '3' })).toMatch(/notice: the source \(the \.cnn file or a file it imports\) changed since .*last\.ckpt was written/);
  });
});
