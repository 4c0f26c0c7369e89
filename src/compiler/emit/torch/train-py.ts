// Placeholder while the export is being written; replaced by the module's real generator.
import type { TorchExportInput } from './index.ts';

export function trainPy(_input: TorchExportInput): string {
  throw new Error('train-py: not written yet');
}
