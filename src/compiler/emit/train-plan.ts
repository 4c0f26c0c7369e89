/**
 * The training plan: which tensors the training graphs take and which of them train (parameters
 * and buffers in layer order, then optimizer state; frozen layers' none), their initial values,
 * and the tree the graphs run.
 *
 * Frozen layers (inside `frozen { }`, or matched by the train section's freeze patterns) get no
 * gradient and no update; a frozen batch norm uses its running statistics and keeps them.
 */
import type { ParamSpec } from '../layers/types.ts';
import { layers, withChildren, type CheckedModel, type LayerNode, type Node } from '../model.ts';
import type { TrainConfig } from '../train-config.ts';
import { assertEmittable } from './inference.ts';
import { initialValue, paramCount } from './init.ts';
import { optimizerSlots } from './optimizers.ts';

/** `*` matches any run of characters (dots included); everything else literally. */
function globRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/**
 * A predicate for the train section's freeze patterns: a layer is frozen when a pattern matches its
 * path or the path of anything it is inside (`stage1` freezes `stage1.conv2`; so does `stage1.*`).
 */
export function frozenMatcher(patterns: readonly string[]): (node: LayerNode) => boolean {
  const res = patterns.map(globRegExp);
  if (res.length === 0) return () => false;
  return (node) => {
    const parts = node.path.split('.');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('.');
      if (res.some((r) => r.test(prefix))) return true;
    }
    return false;
  };
}

export interface StateEntry {
  /** `conv1.weight`, `bn1.running_mean`, `optim.conv1.weight.m`. */
  name: string;
  dims: number[];
  kind: 'param' | 'buffer' | 'optim';
  /** Whether the training step outputs a new value (`new:NAME`). */
  updated: boolean;
  /** For params and buffers: the layer and its spec. */
  node?: LayerNode;
  spec?: ParamSpec;
}

export interface TrainPlan {
  model: CheckedModel & { input: number[]; output: number[] };
  config: TrainConfig;
  /** Every state value, in input order: parameters and buffers in layer order, then optimizer state. */
  state: StateEntry[];
  isFrozen: (node: LayerNode) => boolean;
  /** Full parameter name -> optimizer slot names. */
  slots: Map<string, string[]>;
}

export function trainPlan(model: CheckedModel, config: TrainConfig): TrainPlan {
  assertEmittable(model);
  const match = frozenMatcher(config.freeze);
  const isFrozen = (node: LayerNode) => node.frozen || match(node);
  const state: StateEntry[] = [];
  const optim: StateEntry[] = [];
  const slots = new Map<string, string[]>();
  const slotNames = optimizerSlots(config.optimizer);
  for (const node of layers(model.root)) {
    const frozen = isFrozen(node);
    for (const spec of node.params) {
      const name = `${node.path}.${spec.name}`;
      const dims = [...spec.shape];
      if (spec.trainable) {
        state.push({ name, dims, kind: 'param', updated: !frozen, node, spec });
        if (!frozen) {
          slots.set(name, slotNames.map((s) => `optim.${name}.${s}`));
          for (const s of slotNames) optim.push({ name: `optim.${name}.${s}`, dims, kind: 'optim', updated: true });
        }
      } else {
        // Buffers: updated when the layer trains, if its kind updates them (bn's running statistics).
        state.push({ name, dims, kind: 'buffer', updated: !frozen && (node.layer.updates?.includes(spec.name) ?? false), node, spec });
      }
    }
  }
  return { model, config, state: [...state, ...optim], isFrozen, slots };
}

/** Initial state: parameters as `cnnc compile` initialises them for `seed` (default config.seed), optimizer state zero. */
export function initialState(plan: TrainPlan, seed = plan.config.seed): Map<string, { dims: number[]; data: Float32Array }> {
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const e of plan.state) {
    const count = e.dims.reduce((a, b) => a * b, 1);
    out.set(e.name, { dims: e.dims, data: e.spec ? initialValue(e.spec.init, paramCount(e.spec), seed, e.name) : new Float32Array(count) });
  }
  return out;
}

/**
 * The tree the training graphs run: an activation that commutes with a max (relu) before a window
 * max (`maxpool`, `globalmaxpool`) swapped to after it, which gives the same values and gradients
 * (LayerKind.commutesWithMax) with the activation's forward and backward on the pooled tensor.
 */
export function poolsBeforeActivations<N extends Node>(node: N): N {
  const copy = withChildren(node, poolsBeforeActivations);
  if (copy.kind !== 'seq') return copy;
  const items = copy.items;
  for (let i = 0; i + 1 < items.length; i++) {
    const [act, pool] = [items[i], items[i + 1]];
    if (act.kind !== 'layer' || pool.kind !== 'layer' || !act.layer.commutesWithMax || !pool.layer.windowMax) continue;
    items.splice(i, 2, { ...pool, input: act.input }, { ...act, input: pool.output, output: pool.output });
    i++;
  }
  return copy;
}

