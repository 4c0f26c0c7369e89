/**
 * What one training step costs, before anything runs: forward + backward MACs, the activations
 * kept for the backward pass, and gradient and optimizer-state memory, for a batch size.
 */
import { optimizerSlots } from './emit/optimizers.ts';
import { product } from './layers/types.ts';
import { layers, type CheckedModel } from './model.ts';
import type { TrainConfig } from './train-config.ts';

export interface TrainingCost {
  batch: number;
  forwardMacs: number; // per step
  backwardMacs: number; // per step
  savedActivationBytes: number; // per step
  gradientBytes: number;
  optimizerStateBytes: number;
}

export function trainingCost(model: CheckedModel, config: TrainConfig, batch = config.batch): TrainingCost {
  let forward = 0;
  let backward = 0;
  let activations = 0;
  let trainable = 0;
  let anyTrainableBefore = false;
  for (const l of layers(model.root)) {
    forward += l.macs;
    activations += l.output ? product(l.output) : 0;
    const own = l.frozen ? 0 : l.params.filter((p) => p.trainable).reduce((s, p) => s + product(p.shape), 0);
    trainable += own;
    // The weight gradient costs as much as the forward product; the input gradient too, but only
    // when some trainable layer lies before this one and needs it.
    if (own > 0) backward += l.macs;
    if (anyTrainableBefore) backward += l.macs;
    anyTrainableBefore ||= own > 0;
  }
  return {
    batch,
    forwardMacs: forward * batch,
    backwardMacs: backward * batch,
    savedActivationBytes: 4 * activations * batch,
    gradientBytes: 4 * trainable,
    optimizerStateBytes: 4 * trainable * optimizerSlots(config.optimizer).length,
  };
}
