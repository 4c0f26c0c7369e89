/** `--weights FILE` and `--init FILE`: the one loader (src/runtime/weights/) and what the terminal shows of its report. */
import type { CheckedModel } from '../compiler/model.ts';
import { formatWeightReport, loadModelWeights, type LoadedWeights, type ReportOptions } from '../runtime/weights/index.ts';

export interface WeightsFlag {
  /** `train --init`, `compile --train --weights`: a differing head is initialised as usual (see match.ts). */
  transfer: boolean;
  purpose: ReportOptions['purpose'];
  /** Where the full report will be, said after the terminal's shortened lists: "all in FILE". */
  more?: string;
  /** Only the report's first line (predict, whose output is the predictions). */
  brief?: boolean;
  log: (text: string) => void;
}

/**
 * The weights of `file` for `model`, the report on `log` (for a match by structure, and always for
 * a training run's start; a match by name for compile or predict stays quiet, as it always did)
 * and in full for a report file.
 */
export function weightsForModel(model: CheckedModel, file: string, flag: WeightsFlag): LoadedWeights & { fullReport: string } {
  const loaded = loadModelWeights(model, file, { transfer: flag.transfer });
  const m = loaded.match;
  if (m.by === 'structure' || flag.transfer) {
    const compact = formatWeightReport(m, { purpose: flag.purpose, more: flag.more });
    flag.log(flag.brief ? compact.split('\n')[0] : compact);
  }
  return { ...loaded, fullReport: formatWeightReport(m, { purpose: flag.purpose, full: true }) + '\n' };
}
