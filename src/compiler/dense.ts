/**
 * Dense prediction (segmentation): a model whose output is a feature map, K×H×W with H·W > 1,
 * predicts at every position, and trains against an H×W mask of class indices. A K×1×1 output is
 * still one prediction per sample (a classifier that ends in a 1x1 convolution).
 */
import type { Shape } from './layers/types.ts';
import type { TrainConfig } from './train-config.ts';

export interface DenseOutput {
  /** K, the channels of the output. */
  channels: number;
  height: number;
  width: number;
}

/** The output's channels, height and width when the model predicts per position; else undefined. */
export function denseOutput(output: Shape | null | undefined): DenseOutput | undefined {
  if (!output || output.length !== 3 || output[1] * output[2] === 1) return undefined;
  return { channels: output[0], height: output[1], width: output[2] };
}

/**
 * How many classes outputs of `size` values (per sample, or per position of a dense model)
 * predict: one each, or 2 for a single output under bce (its sign says which).
 */
export function classesOf(size: number, loss: TrainConfig['loss']['kind']): number {
  return loss === 'bce' && size === 1 ? 2 : size;
}
