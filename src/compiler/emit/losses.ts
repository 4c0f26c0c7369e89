/**
 * The losses of the training and evaluation graphs, one entry per `loss:` kind: the options only
 * it reads, the probabilities layer it takes as logits instead (folded into it, as PyTorch's
 * CrossEntropyLoss and BCEWithLogitsLoss; train.py's FOLDED_BY_LOSS), its value, prediction and
 * gradient in ONNX ops; and around them what every loss shares: the mean over the counted labels,
 * the `ignore` label, the correct count and a dense model's IoU counts.
 */
import type { LayerKind } from '../layers/types.ts';
import { finalLayer, type LayerNode, type Node } from '../model.ts';
import { classesOf, denseOutput } from '../dense.ts';
import type { TrainConfig } from '../train-config.ts';
import type { LowerContext } from './context.ts';

const FLOAT = 1, INT64 = 7;

/** What a loss's graph reads: the values and helpers that every loss shares. */
interface LossInputs {
  ctx: LowerContext;
  options: TrainConfig['loss'];
  /** The logits: [N, K], or [N, K, H, W] for a dense model. */
  z: string;
  labels: string;
  /** K, the outputs per prediction (the class axis, 1). */
  K: number;
  /** The number of predictions counted (labels not ignored, at least 1), float. */
  n: string;
  /** v with the ignored predictions' values zeroed (over the class axis). */
  masked(v: string): string;
  sumAll(v: string): string;
  /** The labels one-hot over the class axis (float). */
  onehot(): string;
  /** The arg max over the class axis. */
  argmax(): string;
  /** A single output's prediction, int64: `f` of z's one channel. */
  single(f: (v: string) => string): string;
}

export interface Loss {
  /** The `loss:` options that only this kind reads (others warn when given with it). */
  options: readonly string[];
  /** The final layer it takes the values before (LayerKind.probabilities). */
  folds?: LayerKind['probabilities'];
  /** Its value (a mean) and prediction (int64, like the labels); `grad` then gives d value / dz. */
  graph(t: LossInputs): { loss: string; pred: string; grad(): string };
}

/** bce's and mse's targets: the 0/1 label for one output, one-hot targets for K; the mean is over all outputs. */
function perOutput(t: LossInputs): { target: string; total: string } {
  const { ctx } = t;
  const target = t.K === 1 ? ctx.op('Unsqueeze', [ctx.op('Cast', [t.labels], { to: FLOAT }), ctx.ints([1])]) : t.onehot();
  return { target, total: ctx.op('Mul', [t.n, ctx.scalar(t.K, 'outputs')]) };
}

export const losses: { [K in TrainConfig['loss']['kind']]: Loss } = {
  /** Softmax cross-entropy over the class axis, label smoothing as PyTorch: targets (1 - ε)·onehot + ε/K. */
  cross_entropy: {
    options: ['smoothing'],
    folds: 'softmax',
    graph(t) {
      const { ctx } = t;
      const eps = t.options.smoothing;
      const logp = ctx.op('LogSoftmax', [t.z], { axis: 1 });
      let target = t.onehot();
      if (eps > 0) target = ctx.op('Add', [ctx.op('Mul', [target, ctx.scalar(1 - eps, 'confidence')]), ctx.scalar(eps / t.K, 'smooth')]);
      const loss = ctx.op('Div', [ctx.op('Neg', [t.sumAll(t.masked(ctx.op('Mul', [target, logp])))]), t.n]);
      return { loss, pred: t.argmax(), grad: () => ctx.op('Div', [t.masked(ctx.op('Sub', [ctx.op('Exp', [logp]), target])), t.n]) };
    },
  },
  /** Binary cross-entropy with logits, max(z, 0) - z·t + log(1 + exp(-|z|)) (stable for any z); one output predicts z > 0. */
  bce: {
    options: [],
    folds: 'sigmoid',
    graph(t) {
      const { ctx, z } = t;
      const { target, total } = perOutput(t);
      const terms = ctx.op('Add', [
        ctx.op('Sub', [ctx.op('Relu', [z]), ctx.op('Mul', [z, target])]),
        ctx.op('Softplus', [ctx.op('Neg', [ctx.op('Abs', [z])])]),
      ]);
      const loss = ctx.op('Div', [t.sumAll(t.masked(terms)), total]);
      const pred = t.K === 1 ? t.single((v) => ctx.op('Greater', [v, ctx.scalar(0, 'zero')])) : t.argmax();
      return { loss, pred, grad: () => ctx.op('Div', [t.masked(ctx.op('Sub', [ctx.op('Sigmoid', [z]), target])), total]) };
    },
  },
  /** Mean squared error; one output predicts z rounded. */
  mse: {
    options: [],
    graph(t) {
      const { ctx, z } = t;
      const { target, total } = perOutput(t);
      const diff = ctx.op('Sub', [z, target]);
      const loss = ctx.op('Div', [t.sumAll(t.masked(ctx.op('Mul', [diff, diff]))), total]);
      const pred = t.K === 1 ? t.single((v) => ctx.op('Round', [v])) : t.argmax();
      return { loss, pred, grad: () => ctx.op('Div', [t.masked(ctx.op('Mul', [diff, ctx.scalar(2, 'two')])), total]) };
    },
  },
};

/**
 * The final layer folded into the loss: a softmax before cross-entropy or a sigmoid before BCE,
 * wherever the model's last layer is (inside blocks too); the loss takes the values before it.
 */
export function foldedTail(root: Node, config: TrainConfig): LayerNode | undefined {
  const last = finalLayer(root);
  const want = losses[config.loss.kind].folds;
  return want !== undefined && last?.layer.probabilities === want ? last : undefined;
}

export interface LossValues {
  loss: string;
  correct: string;
  /** Gradient of the loss with respect to the loss's input (absent in evaluation). */
  dz?: string;
  /** Dense models: per class, the pixels predicted and labelled it (intersection) and either (union), int64 [C]. */
  iou?: { intersection: string; union: string };
}

/**
 * Loss, correct count and (with `withGrad`) the gradient, for z [N, ...out] and int64 labels: [N],
 * or [N, H, W] for a dense model (out K×H×W), whose every position is a prediction (PyTorch's
 * losses on [N, K, H, W] against [N, H, W], the mean over positions and batch). Labels equal to
 * the loss's `ignore` count toward neither the loss (the mean is over the others, as PyTorch's
 * ignore_index; 0 when a batch has none) nor the correct count nor the IoU counts.
 */
export function emitLoss(ctx: LowerContext, node: Node, config: TrainConfig, zIn: string, labels: string, outShape: readonly number[], withGrad: boolean): LossValues {
  return ctx.scoped(node, 'loss', () => {
    const dense = denseOutput(outShape);
    const K = dense ? dense.channels : outShape.reduce((a, b) => a * b, 1);
    const z = dense || outShape.length === 1 ? zIn : ctx.op('Flatten', [zIn], { axis: 1 });
    const { kind, ignore } = config.loss;
    const valid = ignore === undefined ? undefined : ctx.op('Not', [ctx.op('Equal', [labels, ctx.constant(BigInt64Array.of(BigInt(ignore)), [], 'ignore')])]);
    // The valid positions as a factor that broadcasts over the class axis.
    const validK = valid && ctx.op('Unsqueeze', [ctx.op('Cast', [valid], { to: FLOAT }), ctx.ints([1])]);
    const masked = (v: string) => (validK ? ctx.op('Mul', [v, validK]) : v);
    const sumAll = (v: string) => ctx.op('ReduceSum', [v], { keepdims: 0 });
    const n = validK ? ctx.op('Max', [sumAll(validK), ctx.scalar(1, 'one')]) : ctx.op('Cast', [ctx.op('Size', [labels])], { to: FLOAT });
    const { loss, pred, grad } = losses[kind].graph({
      ctx, options: config.loss, z, labels, K, n, masked, sumAll,
      onehot: () => ctx.op('OneHot', [labels, ctx.constant(BigInt64Array.of(BigInt(K)), [], 'depth'), ctx.constant(Float32Array.of(0, 1), [2], 'onehot_values')], { axis: 1 }),
      argmax: () => ctx.op('ArgMax', [z], { axis: 1, keepdims: 0 }),
      single: (f) => ctx.op('Cast', [f(ctx.op('Squeeze', [z, ctx.ints([1])]))], { to: INT64 }),
    });
    let dz = withGrad ? grad() : undefined;
    let hit = ctx.op('Equal', [pred, labels]);
    if (valid) hit = ctx.op('And', [hit, valid]);
    const correct = sumAll(ctx.op('Cast', [hit], { to: INT64 }));
    if (dz && z !== zIn) dz = ctx.op('Reshape', [dz, ctx.op('Shape', [zIn])]);
    return { loss, correct, dz, iou: dense && iouCounts(ctx, pred, labels, valid, classesOf(K, kind)) };
  });
}

/** Per class c of `classes`: positions predicted c and labelled c, and those predicted or labelled c (int64 [C]). */
function iouCounts(ctx: LowerContext, pred: string, labels: string, valid: string | undefined, classes: number): LossValues['iou'] {
  const depth = ctx.constant(BigInt64Array.of(BigInt(classes)), [], 'classes');
  const values = ctx.constant(BigInt64Array.of(0n, 1n), [2], 'onehot_counts');
  const validK = valid && ctx.op('Unsqueeze', [ctx.op('Cast', [valid], { to: INT64 }), ctx.ints([1])]);
  // One-hot over the class axis ([N, C, H, W]); out-of-range values (an ignore label) give no class.
  const onehot = (v: string) => {
    const h = ctx.op('OneHot', [v, depth, values], { axis: 1 });
    return validK ? ctx.op('Mul', [h, validK]) : h;
  };
  const [p, t] = [onehot(pred), onehot(labels)];
  const perClass = (v: string) => ctx.op('ReduceSum', [v, ctx.ints([0, 2, 3])], { keepdims: 0 });
  const intersection = perClass(ctx.op('Mul', [p, t]));
  return { intersection, union: ctx.op('Sub', [ctx.op('Add', [perClass(p), perClass(t)]), intersection]) };
}
