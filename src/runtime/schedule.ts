/**
 * Learning rate per optimizer step, from the `schedule` and `optimizer` fields of the train section.
 *
 * Steps are counted from 0 over the whole run; an epoch has `stepsPerEpoch` of them. The schedule
 * is a product of two factors:
 *   - linear warm-up over the first `warmup` epochs (fractional allowed): step s gets (s + 1) / W,
 *     where W = warmup * stepsPerEpoch, so the first step is small but not zero and step W - 1
 *     reaches the full rate;
 *   - the decay: `constant` (1), `step` (gamma ** floor(epoch / step_size), epoch = floor(s / stepsPerEpoch)),
 *     or `cosine` (0.5 * (1 + cos(pi * t / T)) with t and T counted after the warm-up, so it starts at
 *     1 when the warm-up ends and would reach 0 at the step after the last).
 * Pure functions: the rate depends only on the step, so a resumed run gets the same rates.
 */
import type { TrainConfig } from '../compiler/train-config.ts';

export interface ScheduleSpec {
  kind: TrainConfig['schedule']['kind'];
  step_size: number;
  gamma: number;
  warmup: number;
}

export interface StepCounts {
  stepsPerEpoch: number;
  /** All optimizer steps of the run (stepsPerEpoch * epochs). */
  totalSteps: number;
}

/** Steps spent warming up (may be fractional; 0 when there is no warm-up). */
export function warmupSteps(schedule: ScheduleSpec, counts: StepCounts): number {
  return Math.max(0, schedule.warmup) * counts.stepsPerEpoch;
}

/** The warm-up factor in (0, 1] for a step. */
export function warmupFactor(schedule: ScheduleSpec, step: number, counts: StepCounts): number {
  const w = warmupSteps(schedule, counts);
  return w > 0 && step + 1 < w ? (step + 1) / w : 1;
}

/** The decay factor in [0, 1] (for gamma ≤ 1) for a step, ignoring warm-up. */
export function decayFactor(schedule: ScheduleSpec, step: number, counts: StepCounts): number {
  switch (schedule.kind) {
    case 'constant':
      return 1;
    case 'step': {
      const epoch = Math.floor(step / Math.max(1, counts.stepsPerEpoch));
      return schedule.gamma ** Math.floor(epoch / schedule.step_size);
    }
    case 'cosine': {
      const w = Math.min(warmupSteps(schedule, counts), counts.totalSteps);
      const span = counts.totalSteps - w;
      if (span <= 0) return 1;
      const t = Math.min(Math.max(step - w, 0), span);
      return 0.5 * (1 + Math.cos((Math.PI * t) / span));
    }
  }
}

/** The learning rate of one step (0-based, over the whole run). */
export function learningRate(baseLr: number, schedule: ScheduleSpec, step: number, counts: StepCounts): number {
  return baseLr * warmupFactor(schedule, step, counts) * decayFactor(schedule, step, counts);
}

/** learningRate for a train config. */
export function configLearningRate(config: Pick<TrainConfig, 'optimizer' | 'schedule'>, step: number, counts: StepCounts): number {
  return learningRate(config.optimizer.lr, config.schedule, step, counts);
}

/**
 * A warning when the warm-up spans the whole run (a one-epoch run with `warmup=1`): the rate only
 * ever rises, so the run ends at its peak and the decay asked for never happens.
 */
export function warmupWarning(schedule: ScheduleSpec, epochs: number): string | undefined {
  if (!(schedule.warmup > 0) || schedule.warmup < epochs) return undefined;
  const decay = schedule.kind === 'constant' ? '' : ` and the ${schedule.kind} decay never starts`;
  const run = `${epochs} epoch${epochs === 1 ? '' : 's'}`;
  return `the warm-up (warmup=${schedule.warmup}) spans the whole run of ${run}: the learning rate only rises${decay}; ` +
    `lower warmup= or raise epochs`;
}
