/**
 * Every layer kind's backward pass (the registry's grad, run on onnxruntime in float32) against
 * directional central differences of the float64 reference forward, on small odd shapes with
 * strides, asymmetric padding, dilation, groups and depthwise convolutions.
 */
import { describe, expect, it } from 'vitest';
import { checkModel, expectGradients, runGradient } from './helpers/grad-check.ts';
import { GRAD_PREFIX } from '../src/compiler/emit/train.ts';

const model = (input: string, body: string) => checkModel(`model G {\n  input ${input}\n  ${body}\n}\n`);

async function gradCase(input: string, body: string, opts: { batch?: number; xRange?: [number, number] } = {}) {
  const run = await runGradient(model(input, body), { batch: opts.batch ?? 2, xRange: opts.xRange });
  expectGradients(run);
}

describe('conv gradients', () => {
  const cases: [string, string, string][] = [
    ['plain 3x3', '3x6x5', 'conv 4 3x3'],
    ['stride 2, asymmetric pads, dilation, leftover rows', '3x9x8', 'conv 4 3x2 stride=2x1 pad=[1,0,2,1] dilation=1x2'],
    ['stride 3 dropping rows and columns', '2x10x11', 'conv 3 3x3 stride=3'],
    ['pad=same stride 2 on odd sizes', '2x7x6', 'conv 3 3x3 stride=2 pad=same'],
    ['even kernel pad=same', '2x5x5', 'conv 3 4x4 pad=same'],
    ['groups with stride and padding', '4x6x5', 'conv 6 3x3 groups=2 stride=2 pad=1'],
    ['no bias, large pads', '3x5x8', 'conv 5 3x5 pad=2x1 bias=off'],
    ['dilated, stride 3 with leftover rows past the dilation', '2x11x10', 'conv 2 2x2 stride=3 dilation=2'],
    ['dilated stride 2 with one leftover row', '2x12x9', 'conv 2 3x3 stride=2 dilation=2'],
    ['1x1 stride 2', '3x7x7', 'conv 4 1x1 stride=2'],
    ['stride 1 dilated with asymmetric pads keeping the size (dx as a Conv)', '2x9x8', 'conv 3 3x2 dilation=2x1 pad=[2,0,2,1]'],
    ['padding wider than the kernel (dx as a ConvTranspose)', '2x5x5', 'conv 3 2x2 pad=2'],
    ['a layer too large for im2col (dW as a Conv over x and dy)', '16x64x64', 'conv 2 3x3 pad=[1,0,2,1]'],
    ['dwconv dilated, multiplier 2', '3x6x5', 'dwconv 3x3 dilation=2 pad=2 multiplier=2'],
    ['dwconv stride 2 pad=same', '4x9x9', 'dwconv 5x5 stride=2 pad=same'],
  ];
  for (const [name, input, body] of cases) it(name, () => gradCase(input, body));
});

describe('pooling gradients', () => {
  const cases: [string, string, string][] = [
    ['maxpool 2', '2x6x6', 'maxpool 2'],
    ['maxpool 3 stride 2 pad 1 odd size (overlapping windows)', '2x7x5', 'maxpool 3 stride=2 pad=1'],
    ['maxpool 2 on odd size (dropped row)', '2x5x7', 'maxpool 2'],
    ['maxpool 2 with end padding (non-overlapping: MaxUnpool)', '2x7x7', 'maxpool 2 pad=[0,0,1,1]'],
    ['maxpool 2x2 stride 3 (gaps between windows)', '2x8x7', 'maxpool 2 stride=3'],
    ['avgpool 3 stride 2 pad 1 count_pad on', '2x7x6', 'avgpool 3 stride=2 pad=1'],
    ['avgpool count_pad off, asymmetric pads', '2x7x6', 'avgpool 3 stride=2 pad=[1,0,1,2] count_pad=off'],
    ['avgpool 2 on odd size', '3x5x5', 'avgpool 2'],
    ['sumpool 2x3 stride 1 pad same', '2x5x6', 'sumpool 2x3 stride=1 pad=same'],
    ['globalavgpool', '3x5x4', 'globalavgpool'],
    ['globalmaxpool', '3x5x4', 'globalmaxpool'],
  ];
  for (const [name, input, body] of cases) it(name, () => gradCase(input, body));
});

describe('channel layer gradients', () => {
  const cases: [string, string, string][] = [
    ['shuffle 3 of 6 channels', '6x3x2', 'shuffle 3'],
    ['shuffle 4 of 12 channels (not its own inverse)', '12x2x3', 'shuffle 4'],
    ['shuffle in a residual body', '4x3x3', 'residual { conv 4 1x1 -> shuffle 2 -> conv 4 3x3 pad=1 }'],
    ['scale on a feature map', '4x3x5', 'scale'],
    ['scale on a vector', '7', 'scale init=0.3'],
    ['scale at the end of a residual body (layer scale)', '4x3x3', 'residual { dwconv 3x3 pad=1 -> layernorm -> conv 4 1x1 -> scale }'],
  ];
  for (const [name, input, body] of cases) it(name, () => gradCase(input, body));
});

describe('normalisation, activation and head gradients', () => {
  const cases: [string, string, string][] = [
    ['bn on a feature map (batch statistics)', '3x4x5', 'bn eps=1e-3'],
    ['bn on a vector', '6', 'bn'],
    ['layernorm over channels on a feature map', '5x4x3', 'layernorm eps=1e-3'],
    ['layernorm over a vector', '7', 'layernorm'],
    ['layernorm with one channel (x̂ = 0)', '1x3x2', 'layernorm'],
    ['relu', '3x4x5', 'relu'],
    ['leakyrelu', '3x4x5', 'leakyrelu 0.2'],
    ['prelu shared', '3x4x5', 'prelu'],
    ['prelu per channel', '3x4x5', 'prelu per_channel=on'],
    ['prelu per channel on a vector', '7', 'prelu per_channel=on'],
    ['elu', '3x4x5', 'elu 0.7'],
    ['gelu', '3x4x5', 'gelu'],
    ['silu', '3x4x5', 'silu'],
    ['sigmoid', '3x4x5', 'sigmoid'],
    ['tanh', '3x4x5', 'tanh'],
    ['hardswish', '3x4x5', 'hardswish'],
    ['identity on a feature map', '3x4x5', 'identity'],
    ['identity on a vector, between layers', '6', 'dense 5 -> identity -> tanh'],
    ['softmax over channels', '4x3x2', 'softmax'],
    ['softmax over a vector', '7', 'softmax'],
    ['flatten then dense', '3x4x5', 'flatten -> dense 6'],
    ['dense without bias', '9', 'dense 4 bias=off'],
    ['dropout p=0', '9', 'dropout 0'],
  ];
  for (const [name, input, body] of cases) it(name, () => gradCase(input, body, { batch: 3, xRange: [-4, 4] }));
  it('relu6, inputs on both sides of 0 and 6', () => gradCase('3x4x5', 'relu6', { batch: 3, xRange: [-9, 9] }));
  it('hardsigmoid, inputs on both sides of -3 and 3', () => gradCase('3x4x5', 'hardsigmoid', { batch: 3, xRange: [-5, 5] }));
  it('hardsigmoid at the kinks: dy/6 strictly inside (-3, 3), 0 at -3 and 3 (PyTorch\'s convention)', async () => {
    const x = Float32Array.of(-3.5, -3, -2.999, 0, 2.999, 3, 3.5);
    const { dy, outputs } = await runGradient(model('7', 'hardsigmoid'), { batch: 1, x });
    const inside = [false, false, true, true, true, false, false];
    expect([...outputs[`${GRAD_PREFIX}input`].data].map((v) => v + 0)).toEqual(inside.map((k, i) => (k ? Math.fround(dy[i] * Math.fround(1 / 6)) : 0)));
  });
});
