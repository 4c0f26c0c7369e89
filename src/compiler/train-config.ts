/**
 * The `train { ... }` section: each field is declared like a layer's arguments, so it is checked
 * with the same diagnostics. Every field has a default and can be overridden from the CLI.
 */
import type { Expr, TrainSection } from './ast.ts';
import { bindArgs } from './args.ts';
import { closestName, diagnostic, type Diagnostic } from './diagnostics.ts';
import type { ArgSpec } from './layers/types.ts';

export interface TrainConfig {
  loss: { kind: 'cross_entropy' | 'bce' | 'mse'; smoothing: number };
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
    { name: 'kind', type: 'enum', positional: true, values: ['cross_entropy', 'bce', 'mse'], default: 'cross_entropy', doc: 'softmax cross-entropy, binary cross-entropy with logits, or mean squared error' },
    { name: 'smoothing', type: 'number', default: 0, min: 0, max: 1, maxExclusive: true, doc: 'label smoothing (cross_entropy)' },
  ],
  optimizer: [
    { name: 'kind', type: 'enum', positional: true, values: ['sgd', 'adam', 'adamw'], default: 'adam', doc: 'the update rule' },
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

/** Options that only some kinds of a field read; given with another kind they would be ignored silently. */
const optionKinds: Partial<Record<keyof TrainConfig, Record<string, string[]>>> = {
  loss: { smoothing: ['cross_entropy'] },
  optimizer: { momentum: ['sgd'], nesterov: ['sgd'], beta1: ['adam', 'adamw'], beta2: ['adam', 'adamw'], eps: ['adam', 'adamw'] },
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
