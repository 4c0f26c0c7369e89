/**
 * The optimizers of the training step, one entry per `optimizer:` kind: the options only it reads,
 * its state slots per trained parameter, and its update in ONNX ops, with PyTorch's semantics
 * (torch.optim.SGD, Adam, AdamW; lr a float scalar value and step the 0-based int64 step):
 * - sgd: g += wd·p; with momentum, b = μ·b + g and g = b (or g + μ·b with Nesterov); p -= lr·g;
 * - adam: g += wd·p; m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
 *   p -= lr/(1-β1^t) · m / (√v/√(1-β2^t) + eps), t = step + 1;
 * - adamw: as adam without the wd in g, after p ← p·(1 - lr·wd).
 */
import type { Node } from '../model.ts';
import type { TrainConfig } from '../train-config.ts';
import type { LowerContext } from './context.ts';
import type { TrainPlan } from './train-plan.ts';

type Options = TrainConfig['optimizer'];

/** What one parameter's update reads: its value, gradient and slots' values, and the step's shared values. */
interface UpdateInputs<S> {
  p: string;
  g: string;
  slots: readonly string[];
  lr: string;
  shared: S;
}

export interface Optimizer<S = unknown> {
  /** The `optimizer:` options that only this kind reads (others warn when given with it). */
  options: readonly string[];
  /** The state slot names per trained parameter (`optim.NAME.SLOT`). */
  slots(o: Options): string[];
  /** Values computed once per step for every parameter (Adam's bias corrections). */
  shared?(ctx: LowerContext, o: Options, lr: string, step: string): S;
  /** The new parameter value and new slot values (in `slots` order). */
  update(ctx: LowerContext, o: Options, u: UpdateInputs<S>): { param: string; slots: string[] };
}

/** The L2 penalty in the gradient: g + wd·p (sgd, adam). */
const withL2 = (ctx: LowerContext, o: Options, p: string, g: string) =>
  (o.weight_decay > 0 ? ctx.op('Add', [g, ctx.op('Mul', [p, ctx.scalar(o.weight_decay, 'weight_decay')])]) : g);

const sgd: Optimizer<undefined> = {
  options: ['momentum', 'nesterov'],
  slots: (o) => (o.momentum > 0 ? ['momentum'] : []),
  update(ctx, o, { p, g: grad, slots, lr }) {
    let g = withL2(ctx, o, p, grad);
    const out: string[] = [];
    if (o.momentum > 0) {
      const buf = ctx.op('Add', [ctx.op('Mul', [slots[0], ctx.scalar(o.momentum, 'momentum')]), g]);
      out.push(buf);
      g = o.nesterov ? ctx.op('Add', [g, ctx.op('Mul', [buf, ctx.scalar(o.momentum, 'momentum')])]) : buf;
    }
    return { param: ctx.op('Sub', [p, ctx.op('Mul', [g, lr])]), slots: out };
  },
};

interface AdamScalars { stepSize: string; sqrtBc2: string; decay?: string }

/**
 * Adam's per-step scalars, computed in float64 as PyTorch computes them (Python floats) and cast
 * to float32 once: step size lr/(1-β1^t), √(1-β2^t), and AdamW's decay 1 - lr·wd (`decoupled`).
 * In float32, β2 = 0.99999 rounds to 0.99998999, and 1 - β2^t on that value is 0.14% larger than
 * on β2 (the moments' 1 - β2 is exact to float32), which made every update 0.068% too large.
 */
function adamScalars(ctx: LowerContext, o: Options, lr: string, step: string, decoupled: boolean): AdamScalars {
  const DOUBLE = 11, FLOAT = 1;
  const d = (value: number, hint: string) => ctx.constant(Float64Array.of(value), [], hint);
  const one = d(1, 'one_f64');
  const t = ctx.op('Cast', [ctx.op('Add', [step, ctx.constant(BigInt64Array.of(1n), [], 'one')])], { to: DOUBLE });
  const lr64 = ctx.op('Cast', [lr], { to: DOUBLE });
  const correction = (beta: number, hint: string) => ctx.op('Sub', [one, ctx.op('Pow', [d(beta, hint), t])]);
  const toFloat = (v: string) => ctx.op('Cast', [v], { to: FLOAT });
  return {
    stepSize: toFloat(ctx.op('Div', [lr64, correction(o.beta1, 'beta1_f64')])),
    sqrtBc2: toFloat(ctx.op('Sqrt', [correction(o.beta2, 'beta2_f64')])),
    decay: decoupled && o.weight_decay > 0 ? toFloat(ctx.op('Sub', [one, ctx.op('Mul', [lr64, d(o.weight_decay, 'weight_decay_f64')])])) : undefined,
  };
}

/** Adam, with the weight decay in the gradient or (`decoupled`, AdamW) applied to the parameter. */
const adamFamily = (decoupled: boolean): Optimizer<AdamScalars> => ({
  options: ['beta1', 'beta2', 'eps'],
  slots: () => ['m', 'v'],
  shared: (ctx, o, lr, step) => adamScalars(ctx, o, lr, step, decoupled),
  update(ctx, o, { p, g: grad, slots, shared: s }) {
    const g = decoupled ? grad : withL2(ctx, o, p, grad);
    const m = ctx.op('Add', [ctx.op('Mul', [slots[0], ctx.scalar(o.beta1, 'beta1')]), ctx.op('Mul', [g, ctx.scalar(1 - o.beta1, 'one_minus_beta1')])]);
    const v = ctx.op('Add', [ctx.op('Mul', [slots[1], ctx.scalar(o.beta2, 'beta2')]), ctx.op('Mul', [ctx.op('Mul', [g, g]), ctx.scalar(1 - o.beta2, 'one_minus_beta2')])]);
    const denom = ctx.op('Add', [ctx.op('Div', [ctx.op('Sqrt', [v]), s.sqrtBc2]), ctx.scalar(o.eps, 'eps')]);
    const base = s.decay ? ctx.op('Mul', [p, s.decay]) : p;
    return { param: ctx.op('Sub', [base, ctx.op('Mul', [ctx.op('Div', [m, denom]), s.stepSize])]), slots: [m, v] };
  },
});

export const optimizers: { [K in Options['kind']]: Optimizer } = { sgd, adam: adamFamily(false), adamw: adamFamily(true) };

/** The state slot names of each trained parameter under `o`. */
export const optimizerSlots = (o: Options): string[] => optimizers[o.kind].slots(o);

/**
 * The optimizer's step on every trained parameter of the plan: its new value and new slot values
 * by state name, in ops scoped under `optim/NAME` (the shared scalars under `optim`).
 */
export function emitOptimizer(ctx: LowerContext, plan: TrainPlan, root: Node, grads: Map<string, string>, value: (name: string) => string, lr: string, step: string): Map<string, string> {
  const o = plan.config.optimizer;
  const optimizer = optimizers[o.kind];
  const shared = ctx.scoped(root, 'optim', () => optimizer.shared?.(ctx, o, lr, step));
  const out = new Map<string, string>();
  for (const e of plan.state) {
    if (e.kind !== 'param' || !e.updated) continue;
    const grad = grads.get(e.name);
    if (!grad) throw new Error(`no gradient for ${e.name}`);
    const slots = plan.slots.get(e.name)!;
    ctx.scoped(root, `optim/${e.name}`, () => {
      const next = optimizer.update(ctx, o, { p: value(e.name), g: grad, slots: slots.map(value), lr, shared });
      out.set(e.name, next.param);
      slots.forEach((s, i) => out.set(s, next.slots[i]));
    });
  }
  return out;
}
