/**
 * The `train { ... }` section: each field is declared like a layer's arguments, so it is checked
 * with the same diagnostics. Every field has a default and can be overridden from the CLI.
 */
import type { Arg, Expr, TrainSection } from './ast.ts';
import { bindArgs } from './args.ts';
import { closestName, diagnostic, type Diagnostic } from './diagnostics.ts';
import type { ArgSpec } from './layers/types.ts';
import { parseTrainEntry } from './parser.ts';
import { UserError } from '../errors.ts';
import { losses } from './emit/losses.ts';
import { optimizers } from './emit/optimizers.ts';

export interface TrainConfig {
  /** `ignore`: a label value (a mask's unlabelled pixels) that counts toward neither the loss nor the metrics. */
  loss: { kind: 'cross_entropy' | 'bce' | 'mse'; smoothing: number; ignore?: number };
  optimizer: { kind: 'sgd' | 'adam' | 'adamw'; lr: number; momentum: number; nesterov: boolean; weight_decay: number; beta1: number; beta2: number; eps: number };
  schedule: { kind: 'constant' | 'step' | 'cosine'; step_size: number; gamma: number; warmup: number };
  batch: number;
  epochs: number;
  seed: number;
  augment: { flip: boolean; crop: number };
  freeze: string[];
}

const positiveInt = (name: string, def: number, doc: string): ArgSpec => ({ name, type: 'int', positional: true, default: def, min: 1, doc });

export const trainFields: Record<keyof TrainConfig, ArgSpec[]> = {
  loss: [
    { name: 'kind', type: 'enum', positional: true, values: Object.keys(losses), default: 'cross_entropy', doc: 'softmax cross-entropy, binary cross-entropy with logits, or mean squared error' },
    { name: 'smoothing', type: 'number', default: 0, min: 0, max: 1, maxExclusive: true, doc: 'label smoothing (cross_entropy)' },
    { name: 'ignore', type: 'int', min: 0, doc: 'a label value that counts toward neither the loss nor the metrics, e.g. 255 for unlabelled mask pixels (default: none)' },
  ],
  optimizer: [
    { name: 'kind', type: 'enum', positional: true, values: Object.keys(optimizers), default: 'adam', doc: 'the update rule' },
    { name: 'lr', type: 'number', default: 1e-3, min: 0, minExclusive: true, doc: 'learning rate' },
    { name: 'momentum', type: 'number', default: 0, min: 0, max: 1, maxExclusive: true, doc: 'SGD momentum' },
    { name: 'nesterov', type: 'bool', default: false, doc: 'Nesterov momentum (SGD)' },
    { name: 'weight_decay', type: 'number', default: 0, min: 0, doc: 'L2 penalty (decoupled for adamw)' },
    { name: 'beta1', type: 'number', default: 0.9, min: 0, max: 1, maxExclusive: true, doc: 'Adam first-moment decay' },
    { name: 'beta2', type: 'number', default: 0.999, min: 0, max: 1, maxExclusive: true, doc: 'Adam second-moment decay' },
    { name: 'eps', type: 'number', default: 1e-8, min: 0, minExclusive: true, doc: 'Adam denominator epsilon' },
  ],
  schedule: [
    { name: 'kind', type: 'enum', positional: true, values: ['constant', 'step', 'cosine'], default: 'constant', doc: 'learning-rate schedule' },
    { name: 'step_size', type: 'int', default: 10, min: 1, doc: 'epochs between decays (step)' },
    { name: 'gamma', type: 'number', default: 0.1, min: 0, minExclusive: true, doc: 'decay factor (step)' },
    { name: 'warmup', type: 'number', default: 0, min: 0, doc: 'epochs of linear warm-up' },
  ],
  batch: [positiveInt('size', 64, 'batch size')],
  epochs: [positiveInt('count', 10, 'passes over the training data')],
  seed: [{ name: 'value', type: 'int', positional: true, default: 0, min: 0, doc: 'seed for initialisation, shuffling and augmentation' }],
  augment: [
    { name: 'flip', type: 'bool', default: false, doc: 'random horizontal flip' },
    { name: 'crop', type: 'int', default: 0, min: 0, doc: 'random crop after zero padding by this many pixels' },
  ],
  freeze: [{ name: 'patterns', type: 'enum', positional: true, doc: 'layer name patterns (strings, * matches any run of characters)' }],
};

/** Each option that only some kinds read, and those kinds, from a table of kinds and the options each reads. */
function readers(table: Record<string, { options: readonly string[] }>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [kind, entry] of Object.entries(table)) for (const option of entry.options) (out[option] ??= []).push(kind);
  return out;
}

/** Options that only some kinds of a field read; given with another kind they would be ignored silently. */
const optionKinds: Partial<Record<keyof TrainConfig, Record<string, string[]>>> = {
  loss: readers(losses),
  optimizer: readers(optimizers),
  schedule: { step_size: ['step'], gamma: ['step'] },
};

export function defaultTrainConfig(): TrainConfig {
  const config = {} as Record<string, unknown>;
  for (const [field, specs] of Object.entries(trainFields)) {
    if (specs.length === 1 && specs[0].positional) config[field] = specs[0].default ?? [];
    else config[field] = Object.fromEntries(specs.map((s) => [s.name, s.default]));
  }
  return config as unknown as TrainConfig;
}

export function checkTrainSection(section: TrainSection | undefined, diags: Diagnostic[]): TrainConfig {
  const config = defaultTrainConfig() as unknown as Record<string, unknown>;
  const seen = new Set<string>();
  for (const entry of section?.entries ?? []) {
    if (seen.has(entry.key)) diags.push(diagnostic('duplicateOption', entry.keySpan, { layer: 'train', option: entry.key }));
    seen.add(entry.key);
    const specs = trainFields[entry.key as keyof TrainConfig];
    if (!specs) {
      const guess = closestName(entry.key, Object.keys(trainFields));
      diags.push(diagnostic('unknownTrainField', entry.keySpan, { field: entry.key }, {
        hint: guess ? `did you mean "${guess}"?` : `fields: ${Object.keys(trainFields).join(', ')}`,
        fixes: guess ? [{ title: `change to "${guess}"`, span: entry.keySpan, text: guess }] : undefined,
      }));
      continue;
    }
    if (entry.key === 'freeze') {
      config.freeze = freezePatterns(entry, diags);
      continue;
    }
    const bound = bindArgs(specs, entry.values, entry.key, entry.keySpan, new Map(), diags);
    if (!bound.ok) continue;
    config[entry.key] = specs.length === 1 && specs[0].positional ? bound.values[specs[0].name] : bound.values;
    warnIneffective(entry, bound.values.kind, diags);
  }
  return config as unknown as TrainConfig;
}

function warnIneffective(entry: TrainSection['entries'][number], kind: unknown, diags: Diagnostic[]): void {
  const kinds = optionKinds[entry.key as keyof TrainConfig];
  if (!kinds || typeof kind !== 'string') return;
  for (const arg of entry.values) {
    const readers = arg.name && kinds[arg.name];
    if (!readers || readers.includes(kind)) continue;
    diags.push(diagnostic('optionWithoutEffect', arg.span, { field: entry.key, option: arg.name!, kind }, { hint: `only ${readers.join(' and ')} use${readers.length === 1 ? 's' : ''} it` }));
  }
}

/** `freeze: "features.*" conv1`: strings or bare names, or a list of them. */
function freezePatterns(entry: TrainSection['entries'][number], diags: Diagnostic[]): string[] {
  const patterns: string[] = [];
  const visit = (e: Expr) => {
    if (e.kind === 'string') patterns.push(e.value);
    else if (e.kind === 'name') patterns.push(e.name);
    else if (e.kind === 'list') e.items.forEach(visit);
    else diags.push(diagnostic('wrongArgumentType', e.span, { layer: 'freeze', arg: 'pattern', value: 'this', expected: 'a layer name pattern like "features.*"' }));
  };
  for (const v of entry.values) visit(v.value);
  return patterns;
}

// Overrides from the command line: each is one train-section line, checked as the source's are

export interface Override {
  /** How the user wrote it, for messages: `--lr 0`. */
  flag: string;
  /** The train-section line it stands for: `optimizer: lr=0`. */
  entry: string;
}

/**
 * Applies overrides to a config: each is parsed and bound with the train section's own specs, so a
 * bad value gets the message the source would get. Only the values written change: `--lr 0.1` keeps
 * the source's optimizer kind and momentum.
 */
export function applyOverrides(config: TrainConfig, overrides: readonly Override[]): TrainConfig {
  const result = structuredClone(config) as unknown as Record<string, unknown>;
  for (const o of overrides) {
    const fail = (why: string): never => { throw new UserError(`${o.flag}: ${why}`); };
    const usage = 'write it as a train-section line, FIELD: VALUE [name=value ...], e.g. --set "schedule: cosine warmup=1"';
    const entry = parseTrainEntry(o.entry) ?? fail(usage);
    const specs = trainFields[entry.key as keyof TrainConfig];
    if (!specs) {
      const guess = closestName(entry.key, Object.keys(trainFields));
      fail(`there is no train field "${entry.key}"${guess ? `; did you mean "${guess}"?` : `; fields: ${Object.keys(trainFields).join(', ')}`}`);
    }
    if (entry.key === 'freeze') {
      // The section checker reads freeze patterns; a section of this one line gives exactly them.
      const diags: Diagnostic[] = [];
      const patterns = checkTrainSection({ entries: [entry], span: entry.span }, diags).freeze;
      const error = diags.find((d) => d.severity === 'error');
      if (error) fail(`${error.message}, e.g. --set 'freeze: "features.*"'`);
      result.freeze = patterns;
      continue;
    }
    const diags: Diagnostic[] = [];
    const bound = bindArgs(specs, entry.values, entry.key, entry.keySpan, new Map(), diags);
    const error = diags.find((d) => d.severity === 'error');
    if (error || !bound.ok) fail(error ? overrideMessage(error, entry.key, entry.values, specs) : usage);
    const given = Object.keys(bound.spans);
    if (given.length === 0) fail(`no value given for ${entry.key}`);
    if (specs.length === 1 && specs[0].positional) result[entry.key] = bound.values[specs[0].name];
    else result[entry.key] = { ...(result[entry.key] as object), ...Object.fromEntries(given.map((k) => [k, bound.values[k]])) };
  }
  return result as unknown as TrainConfig;
}

/**
 * The diagnostic's message, except that a bare word where a number belongs reads as such (in the
 * source it would be a misspelt block parameter; on the command line it is just a bad value), and
 * a number is not told about expressions.
 */
function overrideMessage(d: Diagnostic, key: string, args: readonly Arg[], specs: readonly ArgSpec[]): string {
  const arg = args.find((a) => a.value.span.start === d.span.start && a.value.span.end === d.span.end);
  if (arg && arg.value.kind === 'name') {
    const positional = specs.filter((s) => s.positional);
    const spec = arg.name !== undefined ? specs.find((s) => s.name === arg.name) : positional[args.filter((a) => a.name === undefined).indexOf(arg)];
    if (spec && (spec.type === 'number' || spec.type === 'int')) {
      return `${key} ${spec.name} = ${arg.value.name} is not ${spec.type === 'int' ? 'an integer' : 'a number'}`;
    }
  }
  // A number typed on the command line is no expression: the source's hint on `//` and rounding does not apply.
  if (arg && arg.value.kind === 'number') return d.message;
  return d.message + (d.hint ? ` (${d.hint})` : '');
}
