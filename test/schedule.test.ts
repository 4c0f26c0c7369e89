import { describe, expect, it } from 'vitest';
import { configLearningRate, decayFactor, learningRate, warmupFactor, warmupWarning, type ScheduleSpec } from '../src/runtime/schedule.ts';
import { defaultTrainConfig } from '../src/compiler/train-config.ts';

const spec = (s: Partial<ScheduleSpec>): ScheduleSpec => ({ kind: 'constant', step_size: 10, gamma: 0.1, warmup: 0, ...s });
const counts = { stepsPerEpoch: 10, totalSteps: 100 }; // 10 epochs of 10 steps

describe('learning-rate schedule', () => {
  it('constant stays at the base rate', () => {
    for (const s of [0, 1, 50, 99]) expect(learningRate(0.1, spec({}), s, counts)).toBe(0.1);
  });

  it('step decays by gamma every step_size epochs', () => {
    const sch = spec({ kind: 'step', step_size: 3, gamma: 0.5 });
    expect(learningRate(1, sch, 0, counts)).toBe(1);
    expect(learningRate(1, sch, 29, counts)).toBe(1); // epoch 2
    expect(learningRate(1, sch, 30, counts)).toBe(0.5); // epoch 3
    expect(learningRate(1, sch, 59, counts)).toBe(0.5);
    expect(learningRate(1, sch, 60, counts)).toBe(0.25);
    expect(learningRate(1, sch, 99, counts)).toBe(0.125); // epoch 9
  });

  it('cosine goes from the base rate towards 0 over all steps', () => {
    const sch = spec({ kind: 'cosine' });
    expect(learningRate(2, sch, 0, counts)).toBe(2);
    expect(learningRate(2, sch, 50, counts)).toBeCloseTo(1, 12);
    expect(learningRate(2, sch, 25, counts)).toBeCloseTo(1 + Math.SQRT1_2, 12);
    expect(learningRate(2, sch, 99, counts)).toBeCloseTo(2 * 0.5 * (1 + Math.cos(Math.PI * 0.99)), 12);
    expect(learningRate(2, sch, 100, counts)).toBeCloseTo(0, 12);
    // monotonically non-increasing
    let prev = Infinity;
    for (let s = 0; s < 100; s++) {
      const lr = learningRate(2, sch, s, counts);
      expect(lr).toBeLessThanOrEqual(prev);
      prev = lr;
    }
  });

  it('linear warm-up over fractional epochs, then the schedule', () => {
    const sch = spec({ warmup: 0.5 }); // 5 steps
    expect([0, 1, 2, 3, 4, 5, 6].map((s) => learningRate(1, sch, s, counts))).toEqual([0.2, 0.4, 0.6, 0.8, 1, 1, 1]);
    expect(warmupFactor(spec({ warmup: 0 }), 0, counts)).toBe(1);
    const w15 = spec({ warmup: 1.5 }); // 15 steps
    expect(warmupFactor(w15, 0, counts)).toBeCloseTo(1 / 15, 12);
    expect(warmupFactor(w15, 14, counts)).toBe(1);
  });

  it('cosine after warm-up starts at the base rate when the warm-up ends', () => {
    const sch = spec({ kind: 'cosine', warmup: 2 }); // 20 warm-up steps, cosine over the remaining 80
    expect(learningRate(1, sch, 9, counts)).toBeCloseTo(0.5, 12);
    expect(learningRate(1, sch, 19, counts)).toBe(1);
    expect(learningRate(1, sch, 20, counts)).toBe(1);
    expect(learningRate(1, sch, 60, counts)).toBeCloseTo(0.5, 12);
    expect(decayFactor(sch, 100, counts)).toBeCloseTo(0, 12);
  });

  it('warm-up longer than the run never divides by zero', () => {
    const sch = spec({ kind: 'cosine', warmup: 20 });
    expect(learningRate(1, sch, 99, counts)).toBeCloseTo(100 / 200, 12);
  });

  it('step schedule with warm-up multiplies both factors', () => {
    const sch = spec({ kind: 'step', step_size: 1, gamma: 0.1, warmup: 2 });
    expect(learningRate(1, sch, 14, counts)).toBeCloseTo(0.1 * 15 / 20, 12);
  });

  it('reads the train config', () => {
    const config = defaultTrainConfig();
    config.optimizer.lr = 0.05;
    config.schedule = { kind: 'step', step_size: 1, gamma: 0.5, warmup: 0 };
    expect(configLearningRate(config, 10, counts)).toBe(0.025);
  });
});

describe('warm-up spanning the whole run', () => {
  it('warns when warmup >= epochs, naming the decay that never starts', () => {
    expect(warmupWarning(spec({ kind: 'cosine', warmup: 1 }), 1)).toBe(
      'the warm-up (warmup=1) spans the whole run of 1 epoch: the learning rate only rises and the cosine decay never starts; lower warmup= or raise epochs');
    expect(warmupWarning(spec({ kind: 'constant', warmup: 3 }), 2)).toBe(
      'the warm-up (warmup=3) spans the whole run of 2 epochs: the learning rate only rises; lower warmup= or raise epochs');
    // And it is true: the last step of a one-epoch cosine run with warmup=1 is at the full rate.
    expect(learningRate(1, spec({ kind: 'cosine', warmup: 1 }), 9, { stepsPerEpoch: 10, totalSteps: 10 })).toBe(1);
  });
  it('says nothing when the warm-up ends before the run does, or there is none', () => {
    expect(warmupWarning(spec({ kind: 'cosine', warmup: 1 }), 2)).toBeUndefined();
    expect(warmupWarning(spec({ kind: 'cosine', warmup: 0.5 }), 1)).toBeUndefined();
    expect(warmupWarning(spec({ kind: 'cosine', warmup: 0 }), 1)).toBeUndefined();
  });
});
