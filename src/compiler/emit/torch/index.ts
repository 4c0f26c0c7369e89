/**
 * `cnnc export FILE --torch -o DIR`: a readable, self-contained PyTorch package for a checked
 * file. Three texts, each from its own module: model.py (the network, from each layer kind's and
 * combinator's PyTorch form in the registries, plus cnnc checkpoint reading and writing),
 * train.py (the model's train { } section as PyTorch code, one process or DDP under torchrun)
 * and README.md (how to run them).
 */
import type { CheckedModel } from '../../model.ts';
import type { SourceInput } from '../../source.ts';
import { modelPy } from './model-py.ts';
import { trainPy } from './train-py.ts';
import { readmeMd } from './readme.ts';

export interface TorchExportInput {
  /** The .cnn file as the user named it (shown in comments and the README). */
  file: string;
  /** Its text, or the check's texts with the files it imports (their steps' comments name them). */
  source: SourceInput;
  /** Every model of the file, in source order: model.py defines them all. */
  models: CheckedModel[];
  /** The model train.py trains (--model, else the first). */
  model: CheckedModel;
}

/** File name -> contents, in the order they are written. */
export function torchPackage(input: TorchExportInput): Map<string, string> {
  return new Map([
    ['model.py', modelPy(input)],
    ['train.py', trainPy(input)],
    ['README.md', readmeMd(input)],
  ]);
}
