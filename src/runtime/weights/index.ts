/**
 * Weights into a model from a file: the one loader behind `compile --weights`, `compile --train
 * --weights`, `train --init` and `predict --weights`. Reads a cnnc checkpoint, an ONNX model or a
 * safetensors state dict (read.ts) and matches its tensors to the model's parameters by name or
 * by structure (match.ts); report.ts says what went where.
 */
import type { CheckedModel } from '../../compiler/model.ts';
import { matchWeights, type MatchOptions, type WeightMatch } from './match.ts';
import { readWeightFile } from './read.ts';

export { formatWeightReport, type ReportOptions } from './report.ts';
export type { MatchOptions, ModelTensor, Pairing, WeightMatch } from './match.ts';
export { readWeightFile, type WeightFile } from './read.ts';

export interface LoadedWeights {
  match: WeightMatch;
  /** Class names a training checkpoint records, for a model without classes=. */
  classes?: string[];
}

export function loadModelWeights(model: CheckedModel, file: string, opts: MatchOptions): LoadedWeights {
  const wf = readWeightFile(file);
  return { match: matchWeights(model, wf, opts), classes: wf.classes };
}
