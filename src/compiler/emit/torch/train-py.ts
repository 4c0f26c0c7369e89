/**
 * train.py of `cnnc export --torch`: the chosen model's train { } section as PyTorch code. The
 * settings become constants at the top, each the default of a command-line flag that checks its
 * value as the train section's own specs do (train-config.ts); the code below them
 * (train-py-body.ts) is the same for every model and follows cnnc's training step: the loss with the
 * final softmax or sigmoid folded in, PyTorch's optimizers (cnnc's have their semantics), frozen
 * layers, the learning-rate schedule per step, augmentation, cnnc's data layouts and checkpoints,
 * in one process or several under torchrun (DistributedDataParallel).
 */
import type { ArgSpec } from '../../layers/types.ts';
import { trainFields, type TrainConfig } from '../../train-config.ts';
import { FOLDED_BY_LOSS } from '../train.ts';
import type { TorchExportInput } from './index.ts';
import { TRAIN_PY_BODY } from './train-py-body.ts';

/** What train.py writes in its checkpoints' meta.format, so that --resume knows its own. */
export const TRAIN_PY_META_FORMAT = 'cnnc-torch-train/1';

type PyValue = number | boolean | string | readonly string[] | undefined;

/**
 * A Python literal for a setting: numbers as JavaScript prints them (Python reads them back as the
 * same double), strings in JSON's quotes (its escapes are Python's), lists as lists (what argparse
 * gives for --freeze, so that a resume compares like with like).
 */
function settingLiteral(value: PyValue): string {
  if (value === undefined) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`train-py: ${value} has no Python literal`);
    return String(value);
  }
  if (typeof value === 'string') return JSON.stringify(value);
  return `[${value.map(settingLiteral).join(', ')}]`;
}

/** One train { } value as a constant and a flag: `optimizer: lr=` is LR and --lr. */
interface Setting {
  name: string;
  field: keyof TrainConfig;
  /** The argument of the field (its name in trainFields). */
  arg: string;
  flag: string;
  help: string;
}

/** The train { } fields in the order the section lists them. */
const SETTINGS: Setting[] = [
  { name: 'LOSS', field: 'loss', arg: 'kind', flag: '--loss', help: 'cross_entropy, bce or mse' },
  { name: 'LABEL_SMOOTHING', field: 'loss', arg: 'smoothing', flag: '--label-smoothing', help: 'label smoothing (cross_entropy)' },
  { name: 'IGNORE', field: 'loss', arg: 'ignore', flag: '--ignore', help: 'a label (mask value) counted in neither the loss nor the metrics' },
  { name: 'OPTIMIZER', field: 'optimizer', arg: 'kind', flag: '--optimizer', help: 'sgd, adam or adamw' },
  { name: 'LR', field: 'optimizer', arg: 'lr', flag: '--lr', help: 'the base learning rate, for the global batch' },
  { name: 'MOMENTUM', field: 'optimizer', arg: 'momentum', flag: '--momentum', help: 'momentum (sgd)' },
  { name: 'NESTEROV', field: 'optimizer', arg: 'nesterov', flag: '--nesterov', help: 'Nesterov momentum, on or off (sgd)' },
  { name: 'WEIGHT_DECAY', field: 'optimizer', arg: 'weight_decay', flag: '--weight-decay', help: 'L2 in the gradient (sgd, adam), decoupled (adamw)' },
  { name: 'BETA1', field: 'optimizer', arg: 'beta1', flag: '--beta1', help: 'first-moment decay (adam, adamw)' },
  { name: 'BETA2', field: 'optimizer', arg: 'beta2', flag: '--beta2', help: 'second-moment decay (adam, adamw)' },
  { name: 'EPS', field: 'optimizer', arg: 'eps', flag: '--eps', help: 'denominator epsilon (adam, adamw)' },
  { name: 'SCHEDULE', field: 'schedule', arg: 'kind', flag: '--schedule', help: 'constant, step or cosine' },
  { name: 'STEP_SIZE', field: 'schedule', arg: 'step_size', flag: '--step-size', help: 'epochs between decays (step)' },
  { name: 'GAMMA', field: 'schedule', arg: 'gamma', flag: '--gamma', help: 'the decay factor (step)' },
  { name: 'WARMUP', field: 'schedule', arg: 'warmup', flag: '--warmup', help: 'epochs of linear warm-up (fractions allowed)' },
  { name: 'BATCH', field: 'batch', arg: 'size', flag: '--batch', help: 'the global batch, split evenly among the processes' },
  { name: 'EPOCHS', field: 'epochs', arg: 'count', flag: '--epochs', help: 'passes over the training data' },
  { name: 'SEED', field: 'seed', arg: 'value', flag: '--seed', help: 'initialisation, data order, augmentation and dropout' },
  { name: 'FLIP', field: 'augment', arg: 'flip', flag: '--flip', help: 'random horizontal flips, on or off' },
  { name: 'CROP', field: 'augment', arg: 'crop', flag: '--crop', help: 'random crops after padding by this many black pixels' },
  { name: 'FREEZE', field: 'freeze', arg: 'patterns', flag: '--freeze', help: 'layers not trained: patterns, * matching any run of characters' },
];

function specOf(s: Setting): ArgSpec {
  const spec = trainFields[s.field].find((a) => a.name === s.arg);
  if (!spec) throw new Error(`train-py: train field ${s.field} has no argument ${s.arg}`);
  return spec;
}

/** The setting's value in a config: a field of one positional value is that value (`batch: 64`). */
function valueOf(s: Setting, config: TrainConfig): PyValue {
  const field = config[s.field] as unknown;
  return (trainFields[s.field].length === 1 ? field : (field as Record<string, unknown>)[s.arg]) as PyValue;
}

/** The argparse type of a setting, with the train section's bounds: `type=number(0, 1, high_open=True)`. */
function argparseType(s: Setting): string {
  const spec = specOf(s);
  if (spec.type === 'bool') return 'type=on_off';
  if (spec.type === 'enum') return spec.values ? `choices=${settingLiteral(spec.values)}` : 'nargs="*", metavar="PATTERN"';
  const bounds = [String(spec.min ?? '-math.inf'), ...(spec.max !== undefined ? [String(spec.max)] : [])];
  if (spec.minExclusive) bounds.push('low_open=True');
  if (spec.maxExclusive) bounds.push('high_open=True');
  if (spec.type === 'int') bounds.push('kind=int');
  return `type=number(${bounds.join(', ')})`;
}

/** How a value is written on the command line: `cross_entropy`, `on`, `"features.*" conv1`. */
function commandLineText(value: PyValue): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (value === undefined) return '(none)';
  if (Array.isArray(value)) return value.length ? value.map((v) => JSON.stringify(v)).join(' ') : '(none)';
  return String(value);
}

/** Each setting of train.py's top: its constant, value as Python and as a flag's, the flag and what it means (the README lists them too). */
export function settingRows(config: TrainConfig): { name: string; value: string; flag: string; flagValue: string; help: string }[] {
  return SETTINGS.map((s) => {
    const v = valueOf(s, config);
    return { name: s.name, value: settingLiteral(v), flag: s.flag, flagValue: commandLineText(v), help: s.help };
  });
}

/** `NAME = value  # note` lines, the notes aligned. */
function constantLines(rows: { name: string; value: string; note: string }[]): string {
  const width = Math.max(...rows.map((r) => r.name.length + 3 + r.value.length));
  return rows.map((r) => `${`${r.name} = ${r.value}`.padEnd(width)}  # ${r.note}`).join('\n');
}

/** add_settings(parser): the settings' flags, each checked by the train section's own bounds. */
function settingFlags(): string {
  const lines = SETTINGS.map((s) => `    p.add_argument(${JSON.stringify(s.flag)}, ${argparseType(s)}, default=${s.name}, help=${JSON.stringify(s.help)})`);
  return ['def add_settings(p):', '    """The settings above as flags, with the bounds cnnc checks them by."""', ...lines].join('\n');
}

/** File names and model names in comments: one line, no quotes that could end a docstring. */
const inComment = (text: string) => text.replace(/[\r\n]+/g, ' ').replace(/"/g, "'").replace(/\\/g, '/');

function header(input: TorchExportInput): string {
  const { model, file } = input;
  return `#!/usr/bin/env python3
"""Trains ${model.name} (model.py, from ${inComment(file)}) with the settings of its train { } section.

Generated by \`cnnc export --torch\`; see README.md beside it. One process on the CPU or a GPU, or
one process per GPU under torchrun with DistributedDataParallel:

    python train.py --data DIR [--device cuda]
    torchrun --nproc_per_node=4 train.py --data DIR --device cuda

--batch is the global batch: each process takes an equal slice of it. The checkpoints it writes
(OUT/last.ckpt, OUT/best.ckpt) are cnnc checkpoints: \`cnnc predict ${inComment(file)} --weights OUT/best.ckpt IMAGE\`.
"""`;
}

/** The constants that come from the file rather than the train section. */
function fileConstants(input: TorchExportInput): string {
  const folds = Object.entries(FOLDED_BY_LOSS).filter(([, p]) => p !== undefined).map(([loss, p]) => `${JSON.stringify(loss)}: ${JSON.stringify(p)}`);
  return [
    `SOURCE_FILE = ${settingLiteral(inComment(input.file))}`,
    `MODEL = ${settingLiteral(input.model.name)}  # the class in model.py`,
    '# The final layer each loss takes the values before (when the model ends in it: its PROBABILITIES),',
    "# as cnnc folds it into the loss and PyTorch's cross_entropy and binary_cross_entropy_with_logits expect.",
    `FOLDED_BY_LOSS = {${folds.join(', ')}}`,
    `META_FORMAT = ${settingLiteral(TRAIN_PY_META_FORMAT)}  # meta.format of the checkpoints this script writes`,
  ].join('\n');
}

export function trainPy(input: TorchExportInput): string {
  const settings = constantLines(settingRows(input.model.train).map((r) => ({ ...r, note: `${r.flag}: ${r.help}` })));
  return [
    header(input),
    TRAIN_PY_BODY.imports,
    `# The train { } section of ${inComment(input.file)} (cnnc's defaults where it says nothing): the defaults`,
    '# of the command-line flags (python train.py --help).',
    settings,
    '',
    fileConstants(input),
    TRAIN_PY_BODY.commandLine,
    settingFlags(),
    TRAIN_PY_BODY.code,
  ].join('\n');
}
