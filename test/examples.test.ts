/**
 * The example models under examples/: each one checks without errors and gives the exact
 * parameter count of the PyTorch model it follows (sum of p.numel() over parameters, which is
 * our `trainable`: batch-norm running statistics are buffers, counted as `nonTrainable`), and the
 * zoo's MACs are within 2% of torchvision's published GFLOPS. Also the worked numbers of the
 * tutorial documents, checked on small inline models.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { check, type CheckedModel } from '../src/index.ts';
import { layers } from '../src/compiler/model.ts';
import { FASHION_MNIST_CLASSES } from '../src/runtime/dataset.ts';

const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));

interface Expected {
  /** PyTorch's parameter count (our `trainable`), exactly. */
  params: number;
  /** torchvision's published GFLOPS (multiply-accumulates), matched within 2%. */
  gmacs?: number;
  output: number[];
  /** Diagnostic codes of the warnings the file is expected to give (explained in its comments). */
  warnings?: string[];
}

const expected: Record<string, Expected> = {
  'tutorials/000_binary_bn_224.cnn': { params: 102_082, output: [2] },
  'tutorials/001_cifar10.cnn': { params: 545_098, output: [10] },
  'tutorials/002_rgb224_flatten.cnn': { params: 25_710_922, output: [10] },
  'tutorials/003_mnist.cnn': { params: 54_410, output: [10] },
  // The 2x2 pool on the 11x11 map drops the last row and column (as PyTorch does): explained in the file.
  'tutorials/004_fashion_mnist.cnn': { params: 225_034, output: [10], warnings: ['CNN3007'] },
  'zoo/lenet5.cnn': { params: 61_706, output: [10] },
  'zoo/alexnet.cnn': { params: 61_100_840, gmacs: 0.71, output: [1000] },
  'zoo/vgg16.cnn': { params: 138_357_544, gmacs: 15.47, output: [1000] },
  'zoo/resnet18.cnn': { params: 11_689_512, gmacs: 1.81, output: [1000] },
  'zoo/resnet50.cnn': { params: 25_557_032, gmacs: 4.09, output: [1000] },
  'zoo/googlenet.cnn': { params: 6_624_904, gmacs: 1.5, output: [1000] },
  'zoo/mobilenet_v2.cnn': { params: 3_504_872, gmacs: 0.3, output: [1000] },
  'zoo/efficientnet_b0.cnn': { params: 5_288_548, gmacs: 0.39, output: [1000] },
  'zoo/densenet121.cnn': { params: 7_978_856, gmacs: 2.83, output: [1000] },
  // torchvision's 0.06 and 0.15 GFLOPS are rounded too far for 2%: their MACs (56,510,400 and
  // 144,907,992) are compared exactly with the torchvision models' in weights-torch.test.ts.
  'zoo/mobilenet_v3_small.cnn': { params: 2_542_856, output: [1000] },
  'zoo/shufflenet_v2_x1_0.cnn': { params: 2_278_604, output: [1000] },
  'zoo/convnext_tiny.cnn': { params: 28_589_128, gmacs: 4.46, output: [1000] },
  // A dense model: a 3-class logit map (16·9+16 + 3·(16·16·9+16) + 32·16·9+16 + 16·3+3 + 4·32 bn).
  'segmentation/shapes.cnn': { params: 11_955, output: [3, 32, 32] },
  // Ronneberger et al.'s U-Net with padded convolutions and batch norm: the reference's count (test/helpers/unet.py, weights-torch.test.ts).
  'segmentation/unet.cnn': { params: 31_036_546, output: [2, 64, 64] },
};

function checkExample(name: string) {
  const file = join(EXAMPLES, name);
  const result = check(readFileSync(file, 'utf8'), file);
  expect(result.models).toHaveLength(1);
  return { result, model: result.models[0] };
}

const codes = (severity: string, r: ReturnType<typeof check>) =>
  r.diagnostics.filter((d) => d.severity === severity).map((d) => `${d.code} ${d.message}`);

describe('examples', () => {
  it('every example file has expectations here', () => {
    const files = ['tutorials', 'zoo', 'segmentation'].flatMap((dir) =>
      readdirSync(join(EXAMPLES, dir)).filter((f) => f.endsWith('.cnn')).map((f) => `${dir}/${f}`));
    expect(files.sort()).toEqual(Object.keys(expected).sort());
  });

  for (const [name, want] of Object.entries(expected)) {
    describe(name, () => {
      it('checks without errors, and only the expected warnings', () => {
        const { result } = checkExample(name);
        expect(codes('error', result)).toEqual([]);
        expect(result.diagnostics.filter((d) => d.severity === 'warning').map((d) => d.code)).toEqual(want.warnings ?? []);
      });

      it(`has exactly ${want.params.toLocaleString('en-US')} trainable parameters`, () => {
        const { model } = checkExample(name);
        expect(model.output).toEqual(want.output);
        expect(model.totals.trainable).toBe(want.params);
        // Batch-norm running mean and variance are the only non-trainable tensors.
        const bnChannels = [...layers(model.root)].filter((l) => l.layer.name === 'bn').reduce((n, l) => n + l.input![0], 0);
        expect(model.totals.nonTrainable).toBe(2 * bnChannels);
      });

      if (want.gmacs !== undefined) {
        const gmacs = want.gmacs;
        it(`has MACs within 2% of torchvision's ${gmacs} GFLOPS`, () => {
          const { model } = checkExample(name);
          expect(Math.abs(model.totals.macs / 1e9 - gmacs) / gmacs).toBeLessThan(0.02);
        });
      }
    });
  }

  it('the zoo models take 3x224x224 (LeNet-5: 1x32x32) and end in a dense layer without softmax', () => {
    for (const name of Object.keys(expected).filter((n) => n.startsWith('zoo/'))) {
      const { model } = checkExample(name);
      expect(model.input).toEqual(name === 'zoo/lenet5.cnn' ? [1, 32, 32] : [3, 224, 224]);
      const all = [...layers(model.root)];
      expect(all[all.length - 1].layer.name).toBe('dense');
    }
  });

  it('the 28x28 tutorials train with cross-entropy and Adam at lr 1e-3, batch 64', () => {
    for (const name of ['tutorials/003_mnist.cnn', 'tutorials/004_fashion_mnist.cnn']) {
      const { model } = checkExample(name);
      expect(model.input).toEqual([1, 28, 28]);
      expect(model.train.loss.kind).toBe('cross_entropy');
      expect(model.train.optimizer.kind).toBe('adam');
      expect(model.train.optimizer.lr).toBe(1e-3);
      expect(model.train.batch).toBe(64);
      expect(model.preprocess.classes).toHaveLength(10);
    }
    expect(checkExample('tutorials/003_mnist.cnn').model.preprocess).toMatchObject({ mean: [0.1307], std: [0.3081] });
    expect(checkExample('tutorials/004_fashion_mnist.cnn').model.preprocess.classes).toEqual(FASHION_MNIST_CLASSES);
  });

  it('ConvNeXt-T\'s stochastic depth grows from 0 to 0.1 over its 18 blocks, as torchvision\'s', () => {
    const { model } = checkExample('zoo/convnext_tiny.cnn');
    const p = [...layers(model.root)].filter((l) => l.layer.name === 'droppath').map((l) => l.args.p as number);
    expect(p).toHaveLength(18);
    p.forEach((v, i) => expect(v, `block ${i}`).toBeCloseTo(0.1 * i / 17, 12));
  });

  it('GoogLeNet follows torchvision\'s spatial sizes 112, 56, 28, 14, 7 (ceil-mode pools)', () => {
    const { model } = checkExample('zoo/googlenet.cnn');
    const sizes = new Set([...layers(model.root)].map((l) => l.output).filter((s) => s?.length === 3).map((s) => s![1]));
    expect([...sizes]).toEqual([112, 56, 28, 14, 7, 1]);
  });
});

/** Checks a one-model source and returns the model, failing on any error. */
function one(body: string): CheckedModel {
  const r = check(`model T {\n${body}\n}\n`);
  expect(codes('error', r)).toEqual([]);
  return r.models[0];
}

describe('the tutorials\' worked numbers', () => {
  it('32x32 input, 5x5 kernel, stride 1, padding 0 gives 28x28 (003)', () => {
    expect(one('input 1x32x32\nconv 1 5x5').output).toEqual([1, 28, 28]);
  });

  it('32x32 input with a 3x3 kernel gives 30, 32, 15 and 16 for the four stride/padding cases (003)', () => {
    expect(one('input 1x32x32\nconv 1 3x3 stride=1 pad=0').output).toEqual([1, 30, 30]);
    expect(one('input 1x32x32\nconv 1 3x3 stride=1 pad=1').output).toEqual([1, 32, 32]);
    expect(one('input 1x32x32\nconv 1 3x3 stride=2 pad=0').output).toEqual([1, 15, 15]);
    expect(one('input 1x32x32\nconv 1 3x3 stride=2 pad=1').output).toEqual([1, 16, 16]);
  });

  it('224x224 input, conv 64 7x7 stride 2 padding 3 gives 112x112 (003)', () => {
    expect(one('input 3x224x224\nconv 64 7x7 stride=2 pad=3').output).toEqual([64, 112, 112]);
  });

  it('conv 32 3x3 on 3 channels has 32 x (3 x 3 x 3 + 1) = 896 parameters (000, 001)', () => {
    expect(one('input 3x224x224\nconv 32 3x3 pad=1').totals.trainable).toBe(896);
    expect(one('input 3x32x32\nconv 32 3x3 pad=1').totals.trainable).toBe(896);
  });

  it('a dense layer from 224x224x3 = 150,528 inputs to 1,024 has 150,528 x 1,024 weights (000)', () => {
    expect(one('input 3x224x224\nflatten -> dense 1024 bias=off').totals.trainable).toBe(150_528 * 1_024);
  });

  it('same padding keeps 5x5 at 5x5 and valid padding gives 3x3 for a 3x3 kernel (003)', () => {
    expect(one('input 1x5x5\nconv 1 3x3 pad=same').output).toEqual([1, 5, 5]);
    expect(one('input 1x5x5\nconv 1 3x3 pad=valid').output).toEqual([1, 3, 3]);
  });

  it('a 2x2 max pool with stride 2 halves 4x4 to 2x2 (004), and 1->3 channels 3x3 pad 1 keeps 28x28 (001)', () => {
    expect(one('input 1x4x4\nmaxpool 2 stride=2').output).toEqual([1, 2, 2]);
    expect(one('input 1x28x28\nconv 3 3x3 stride=1 pad=1').output).toEqual([3, 28, 28]);
  });

  it('the 28x28 tutorials\' shapes: 26 -> 13 -> 11 -> 5, and 5,408 features after one block (003, 004)', () => {
    expect(one('input 1x28x28\nconv 32 3x3 -> relu -> maxpool 2').output).toEqual([32, 13, 13]);
    expect(one('input 1x28x28\nconv 32 3x3 -> maxpool 2 -> flatten').output).toEqual([32 * 13 * 13]);
    expect(one('input 1x28x28\nconv 32 3x3 -> maxpool 2 -> conv 64 3x3 -> maxpool 2').output).toEqual([64, 5, 5]);
  });
});

describe('arithmetic in values', () => {
  it('* and / bind tighter than + and -, all left-associative; unary minus and parentheses', () => {
    expect(one('input 2+3*4').output).toEqual([14]);
    expect(one('input 20-6-4').output).toEqual([10]);
    expect(one('input 24/4/2').output).toEqual([3]);
    expect(one('input 2*3+4*5-6/2').output).toEqual([23]);
    expect(one('input (2+3)*4').output).toEqual([20]);
    expect(one('input 10 - -2*3').output).toEqual([16]);
  });
});
