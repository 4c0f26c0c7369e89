import { describe, expect, it } from 'vitest';
import { check } from '../src/index.ts';
import { trainingCost } from '../src/compiler/training-cost.ts';

const model = (body: string, train = '') => check(`model m { input 1x8x8 ${body} ${train} }`).models[0];

describe('training step cost', () => {
  it('counts weight gradients everywhere and input gradients after the first trainable layer', () => {
    // conv: 4*6*6*9 = 1296 MACs; dense: 144*10 = 1440 MACs.
    const m = model('conv 4 3x3 -> relu -> flatten -> dense 10', 'train { batch: 2 optimizer: adam }');
    const t = trainingCost(m, m.train);
    expect(t.forwardMacs).toBe(2 * (1296 + 1440));
    expect(t.backwardMacs).toBe(2 * (1296 + 2 * 1440));
    expect(t.savedActivationBytes).toBe(4 * 2 * (144 + 144 + 144 + 10));
    expect(t.gradientBytes).toBe(4 * (40 + 1450));
    expect(t.optimizerStateBytes).toBe(2 * 4 * (40 + 1450));
  });
  it('frozen layers need no weight gradient and no optimizer state', () => {
    const m = model('frozen { conv 4 3x3 } -> flatten -> dense 10', 'train { optimizer: sgd momentum=0.9 }');
    const t = trainingCost(m, m.train, 1);
    expect(t.backwardMacs).toBe(1440);
    expect(t.gradientBytes).toBe(4 * 1450);
    expect(t.optimizerStateBytes).toBe(4 * 1450);
  });
});
