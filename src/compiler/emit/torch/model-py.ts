/**
 * model.py of `cnnc export --torch`: every model of a .cnn file as a readable PyTorch module.
 *
 * One class per model and one per distinct expansion of a block (`basic(64, 1)` is Basic_64_1;
 * uses with the same code share it), laid out as the source, with the file and line of each
 * step in a comment (an imported block's steps: the imported file's). Modules nest along cnnc's path segments, so `model.state_dict()` keys are cnnc's
 * tensor names (`repeat1.0.residual1.basic1.conv1.weight`), apart from PyTorch's
 * num_batches_tracked buffers; the fixed parts (checkpoints, freezing, `python model.py`) are in
 * runtime-py.ts, the PyTorch form of each node kind in combinators.ts and the layer registry.
 */
import path from 'node:path';
import { UserError } from '../../../errors.ts';
import { formatShape } from '../../layers/types.ts';
import { finalLayer, layers, type CheckedModel, type LayerNode, type Node, type SeqNode } from '../../model.ts';
import { sourceSetOf, type Source, type SourceSet } from '../../source.ts';
import { assertEmittable, PRODUCER, sourceHash } from '../inference.ts';
import { formOf, type Container, type TreeWriter } from './containers.ts';
import type { TorchExportInput } from './index.ts';
import { INDENT, PYTHON_KEYWORDS, PyWriter, pyLiteral, renderChild, type PyChild } from './python.ts';
import { CHECKPOINTS, IMPORTS, MAIN, MODEL_BASE } from './runtime-py.ts';

/** Names model.py defines or uses at module level besides the helper classes. */
const MODULE_NAMES = [
  'hashlib', 'json', 'math', 'os', 're', 'sys', 'torch', 'nn', 'F', 'frozen', 'CnncModel', 'CHECKPOINT_MAGIC', 'CHECKPOINT_VERSION',
  'CheckpointError', 'read_checkpoint', 'load_checkpoint', 'save_checkpoint', 'MODELS', 'DEFAULT_MODEL', 'build_model', 'main',
];

/**
 * Attributes of an nn.Module (torch 1.13 and 2.x) and of the model classes: PyTorch refuses a
 * child module of such a name (add_module: "attribute already exists").
 */
const MODULE_ATTRIBUTES = new Set([
  'T_destination', 'add_module', 'apply', 'bfloat16', 'buffers', 'call_super_init', 'children', 'compile', 'cpu', 'cuda', 'double',
  'dump_patches', 'eval', 'extra_repr', 'float', 'forward', 'get_buffer', 'get_extra_state', 'get_parameter', 'get_submodule',
  'half', 'ipu', 'load_state_dict', 'modules', 'mtia', 'named_buffers', 'named_children', 'named_modules', 'named_parameters',
  'parameters', 'register_backward_hook', 'register_buffer', 'register_forward_hook', 'register_forward_pre_hook',
  'register_full_backward_hook', 'register_full_backward_pre_hook', 'register_load_state_dict_post_hook',
  'register_load_state_dict_pre_hook', 'register_module', 'register_parameter', 'register_state_dict_post_hook',
  'register_state_dict_pre_hook', 'requires_grad_', 'set_extra_state', 'set_submodule', 'share_memory', 'state_dict', 'to',
  'to_empty', 'train', 'training', 'type', 'xpu', 'zero_grad',
  'freeze', 'NAME', 'INPUT', 'OUTPUT', 'MEAN', 'STD', 'CLASSES', 'SOURCE_HASH', 'PROBABILITIES',
]);

/** Whether `self.NAME` works; other names (Python's reserved words) go through add_module and _modules. */
const isAttribute = (name: string) => !PYTHON_KEYWORDS.has(name);

/** `Basic_64_1` for `basic(64, 1)`, `InvertedResidual` for `inverted_residual()`. */
function blockClassName(name: string, text: string): string {
  const camel = name.split('_').filter(Boolean).map((p) => p[0].toUpperCase() + p.slice(1)).join('') || 'Block';
  const args = /\((.*)\)/s.exec(text)?.[1].replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  return args ? `${camel}_${args}` : camel;
}

/** The nodes from the model's root to its final layer, through sequences (finalLayer's walk). */
function finalPath(root: SeqNode, last: LayerNode): Set<Node> {
  const nodes = new Set<Node>();
  const walk = (node: Node): boolean => {
    if (node === last) return nodes.add(node), true;
    if (node.kind !== 'seq') return false;
    const item = [...node.items].reverse().find((i) => layers(i).length > 0);
    return item !== undefined && walk(item) && (nodes.add(node), true);
  };
  walk(root);
  return nodes;
}

class ModelPyWriter implements TreeWriter {
  readonly py = new PyWriter();
  finalLayer?: LayerNode;
  private final = new Set<Node>();
  private readonly file: string;
  private readonly sources: SourceSet;
  private readonly hash: string;
  /** Block classes in the order written (inner blocks first), and each one's name by its code. */
  private readonly blocks: string[] = [];
  private readonly byCode = new Map<string, string>();
  readonly classNames = new Set<string>();

  constructor(private readonly input: TorchExportInput, private readonly reserved: ReadonlySet<string>) {
    this.file = path.basename(input.file);
    this.sources = sourceSetOf(input.source, input.file);
    this.hash = sourceHash(input.source);
  }

  children(items: readonly Node[], c: Container): PyChild[] {
    const out = items.flatMap((item) => formOf(item, this, c));
    const seen = new Set<string>();
    for (const ch of out) {
      if (seen.has(ch.name)) this.fail(ch.node, `two steps in ${c.at || 'the model'} are named ${ch.name}, and PyTorch needs distinct module names`);
      if (MODULE_ATTRIBUTES.has(ch.name) || ch.name.startsWith('_')) this.fail(ch.node, `PyTorch cannot name a submodule ${ch.name} (an nn.Module attribute, or a private name); rename the label`);
      seen.add(ch.name);
    }
    return out;
  }

  /** Refuses to export `node`, saying why, with the file and line. */
  private fail(node: Node, why: string): never {
    const { source, line } = this.place(node.span.start);
    throw new UserError(`${source.name}:${line}: cannot export ${node.path}: ${why}`);
  }

  onFinalPath(node: Node): boolean {
    return this.final.has(node);
  }

  /** The file an offset lies in and its line there (1-based). */
  private place(offset: number): { source: Source; line: number } {
    const { source, position } = this.sources.locate(offset);
    return { source, line: position.line + 1 };
  }

  /** `model.cnn:3`, `std/resnet.cnn:12`: the file (relative to the one exported) and line of a node. */
  private where(node: { span: Node['span'] }): string {
    const { source, line } = this.place(node.span.start);
    return `${source.label}:${line}`;
  }

  /** The step as written (its first line), or the layer's text for generated ones (a projection shortcut). */
  comment(node: Node): string {
    const from = this.sources.of(node.span.start);
    const written = node.kind === 'layer' && !node.step ? undefined : from.text.slice(node.span.start - from.base, node.span.end - from.base).trim();
    const text = written === undefined
      ? `${(node as LayerNode).text} (projection shortcut)`
      : written.split(/\r?\n/)[0].replace(/\s+/g, ' ').trim() + (/\n/.test(written) ? ' ...' : '');
    return `${this.where(node)}  ${text}`;
  }

  private uniqueClass(base: string): string {
    let name = base;
    for (let i = 2; this.reserved.has(name) || this.classNames.has(name) || PYTHON_KEYWORDS.has(name); i++) name = `${base}_v${i}`;
    this.classNames.add(name);
    return name;
  }

  blockClass(node: SeqNode): string {
    const origin = node.origin as { kind: 'block'; name: string; text: string };
    const children = this.children(node.items, { at: node.path, frozen: node.frozen });
    const defined = this.blockPlace(origin.name);
    const doc = `${origin.text}: block ${origin.name}${defined ? ` (${defined})` : ''}, ${formatShape(node.input!)} -> ${formatShape(node.output!)}.`;
    const code = classCode('@NAME@', 'nn.Module', doc, [], children, this.onFinalPath(node) ? this.finalLayer : undefined, this);
    let name = this.byCode.get(code);
    if (!name) {
      name = this.uniqueClass(blockClassName(origin.name, origin.text));
      this.byCode.set(code, name);
      this.blocks.push(code.replace('@NAME@', name));
    }
    return name;
  }

  /** Where `block NAME(` is (file and line: block names are one per check), for the class's docstring. */
  private blockPlace(name: string): string | undefined {
    const declaration = new RegExp(`^[ \\t]*block[ \\t]+${name}\\b`, 'm');
    for (const source of this.sources.sources) {
      const m = declaration.exec(source.text);
      if (m) return `${source.label}:${this.sources.lines(source).position(m.index).line + 1}`;
    }
    return undefined;
  }

  private modelClass(model: CheckedModel & { input: number[]; output: number[] }, name: string): string {
    const last = finalLayer(model.root);
    const probabilities = last?.layer.probabilities;
    this.finalLayer = probabilities ? last : undefined;
    this.final = probabilities ? finalPath(model.root, last!) : new Set();
    const children = this.children(model.root.items, { at: '', frozen: false });
    const { mean, std, classes } = model.preprocess;
    const attrs = [
      `NAME = ${pyLiteral(model.name)}`,
      `INPUT = ${pyLiteral(model.input)}`,
      `OUTPUT = ${pyLiteral(model.output)}`,
      '# Inputs are pixels scaled to [0, 1], then (x - MEAN) / STD per channel, as cnnc train and predict do.',
      `MEAN = [${mean.map((v) => pyLiteral(v)).join(', ')}]`,
      `STD = [${std.map((v) => pyLiteral(v)).join(', ')}]`,
      `CLASSES = ${classes ? `[${classes.map((c) => pyLiteral(c)).join(', ')}]` : 'None'}`,
      `SOURCE_HASH = ${pyLiteral(this.hash)}`,
      `# The final layer when it gives probabilities ('softmax' or 'sigmoid'), else None: cnnc folds a final`,
      `# softmax into cross_entropy and a final sigmoid into bce; forward(x, logits=True) leaves it out.`,
      `PROBABILITIES = ${probabilities ? pyLiteral(probabilities) : 'None'}`,
    ];
    const doc = `model ${model.name} (${this.where(model)}): ${formatShape(model.input)} -> ${formatShape(model.output)}, ` +
      `${model.totals.trainable.toLocaleString('en-US')} trainable parameters.`;
    return classCode(name, 'CnncModel', doc, attrs, children, this.finalLayer, this, true);
  }

  write(): string {
    // Models are named first: a block's class never takes a model's name.
    const named = this.input.models.map((m) => ({ model: m, name: this.uniqueClass(m.name) }));
    const models = named.map(({ model, name }) => {
      assertEmittable(model);
      return { model, name, code: this.modelClass(model, name) };
    });
    const registry = [
      `MODELS = {${models.map((m) => `${pyLiteral(m.model.name)}: ${m.name}`).join(', ')}}`,
      `DEFAULT_MODEL = ${pyLiteral(this.input.model.name)}`,
      '',
      '',
      `def build_model(name=DEFAULT_MODEL):`,
      `${INDENT}"""A new model of this file, by name, with PyTorch's default initialisation (cnnc's too, up to the random draws)."""`,
      `${INDENT}if name not in MODELS:`,
      `${INDENT}${INDENT}raise KeyError(f'no model {name!r} in this file (models: {", ".join(MODELS)})')`,
      `${INDENT}return MODELS[name]()`,
    ].join('\n') + '\n';
    return [
      this.header(), IMPORTS, MODEL_BASE, ...this.py.definitions.values(), ...this.blocks, ...models.map((m) => m.code),
      registry, CHECKPOINTS, MAIN,
    ].join('\n\n');
  }

  private header(): string {
    const names = this.input.models.map((m) => m.name).join(', ');
    return [
      `# model.py: generated by ${PRODUCER.name} ${PRODUCER.version} from ${this.file} (sha256 ${this.hash.slice(0, 12)}). Regenerate with`,
      `# \`cnnc export ${this.file} --torch -o DIR\` rather than editing.`,
      `"""The models of ${this.file} (${names}) as PyTorch modules.`,
      '',
      'Parameter and buffer names are cnnc\'s (state_dict keys, apart from num_batches_tracked), so',
      'load_checkpoint and save_checkpoint read and write cnnc checkpoints (.ckpt) that cnnc predict',
      '--weights, compile --weights and train --init take. In eval mode a model computes what cnnc\'s',
      'ONNX inference graph computes; `python model.py [--checkpoint X.ckpt]` prints its size.',
      '"""',
    ].join('\n');
  }
}

/** `self.conv1` or, for names that are not plain attributes, `self._modules['train']`. */
const member = (name: string) => (isAttribute(name) ? `self.${name}` : `self._modules[${pyLiteral(name)}]`);

/**
 * A module class: attributes, the children built in __init__ (one per step, with its comment),
 * and forward running them in order. With `last` (the model's final softmax or sigmoid on this
 * class's path), forward(x, logits=True) stops before it; models always take `logits`.
 */
function classCode(name: string, base: string, doc: string, attrs: string[], children: PyChild[], last: LayerNode | undefined, w: TreeWriter, isModel = false): string {
  const i1 = INDENT, i2 = INDENT.repeat(2);
  const out = [`class ${name}(${base}):`, `${i1}"""${doc}"""`, ''];
  if (attrs.length) out.push(...attrs.map((a) => i1 + a), '');
  out.push(`${i1}def __init__(self):`, `${i2}super().__init__()`);
  for (const c of children) {
    const at = isAttribute(c.name) ? renderChild(`${i2}self.${c.name} = `, c, 2) : renderChild(`${i2}self.add_module(${pyLiteral(c.name)}, `, c, 2, ')');
    out.push(...at);
  }
  const logits = isModel || last !== undefined;
  out.push('', `${i1}def forward(self, ${logits ? 'x, logits=False' : 'x'}):`);
  if (isModel) out.push(`${i2}"""logits=True: the values before the final softmax or sigmoid (see PROBABILITIES), for the loss."""`);
  children.slice(0, -1).forEach((c) => out.push(`${i2}x = ${member(c.name)}(x)`));
  const end = children[children.length - 1];
  if (last && end.node === last) out.push(`${i2}if logits:`, `${i2}${INDENT}return x`, `${i2}return ${member(end.name)}(x)`);
  else if (last && w.onFinalPath(end.node)) out.push(`${i2}return ${member(end.name)}(x, logits)`);
  else out.push(`${i2}return ${member(end.name)}(x)`);
  return out.join('\n') + '\n';
}

/** model.py's text; helper classes a layer defines never take a model's or block's name. */
export function modelPy(input: TorchExportInput): string {
  const reserved = new Set(MODULE_NAMES);
  for (;;) {
    const w = new ModelPyWriter(input, reserved);
    const text = w.write();
    const clashes = [...w.py.definitions.keys()].filter((n) => w.classNames.has(n) && !reserved.has(n));
    if (clashes.length === 0) return text;
    for (const n of clashes) reserved.add(n);
  }
}
