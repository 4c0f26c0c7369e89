/**
 * Gradient checks: the emitted backward pass (run on onnxruntime in float32) against directional
 * central differences of a float64 forward built from the plain-loop reference ops, composed over
 * the checked model tree (layers and combinators), so a check needs no hand-written reference.
 */
import { expect } from 'vitest';
import * as ort from 'onnxruntime-node';
import { check } from '../../src/index.ts';
import type { CheckedModel, LayerNode, Node } from '../../src/compiler/model.ts';
import { defaultTrainConfig, type TrainConfig } from '../../src/compiler/train-config.ts';
import { emitGradient, GRAD_PREFIX, NEW_PREFIX, trainPlan, type TrainPlan } from '../../src/compiler/emit/train.ts';
import { referenceOf } from '../reference/combinators.ts';
import { referenceLayers, type T64 } from '../reference/layers.ts';
import { uniform } from './random.ts';

export type Params = Map<string, Float64Array>;

const size = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

/** Checks `source` (no errors allowed) and returns its first model. */
export function checkModel(source: string): CheckedModel {
  const r = check(source, 'grad.cnn');
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(errors.map((d) => d.message).join('; '));
  return r.models[0];
}

/** The float64 forward of one layer in training mode (batch statistics unless frozen; dropout must have p = 0). */
function refLayer(node: LayerNode, x: T64, p: Params, frozen: (n: LayerNode) => boolean): T64 {
  const reference = referenceLayers[node.layer.name];
  if (!reference) throw new Error(`no reference for ${node.layer.name} (test/reference/layers.ts)`);
  const param = (name: string) => {
    const v = p.get(`${node.path}.${name}`);
    if (!v) throw new Error(`no parameter ${node.path}.${name}`);
    return v;
  };
  return reference(node, x, param, !frozen(node));
}

/** The float64 forward of the tree: layers by their references, combinators by theirs (test/reference/combinators.ts). */
export function refForward(node: Node, x: T64, p: Params, frozen: (n: LayerNode) => boolean = (n) => n.frozen): T64 {
  return node.kind === 'layer' ? refLayer(node, x, p, frozen) : referenceOf(node, x, (child, v) => refForward(child, v, p, frozen));
}

/** Random parameters (running variances positive), float32-representable. */
export function randomParams(plan: TrainPlan, seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  plan.state.forEach((e, i) => {
    if (e.kind === 'optim') return;
    const n = size(e.dims);
    out.set(e.name, e.name.endsWith('running_var') ? uniform(seed + i, n, 0.5, 2) : uniform(seed + i, n, -1, 1));
  });
  return out;
}

export interface GradRun {
  plan: TrainPlan;
  x: Float32Array;
  xDims: number[];
  dy: Float32Array;
  params: Map<string, Float32Array>;
  outputs: Record<string, { data: Float32Array; dims: number[] }>;
}

/** Emits and runs the gradient graph on random input, parameters and output gradient. */
export async function runGradient(model: CheckedModel, opts: { batch?: number; seed?: number; config?: Partial<TrainConfig>; xRange?: [number, number]; x?: Float32Array; step?: number } = {}): Promise<GradRun> {
  const config = { ...defaultTrainConfig(), ...opts.config };
  const plan = trainPlan(model, config);
  const seed = opts.seed ?? 1;
  const xDims = [opts.batch ?? 2, ...model.input!];
  const x = opts.x ?? uniform(seed * 31 + 7, size(xDims), ...(opts.xRange ?? [-2, 2]));
  const dy = uniform(seed * 17 + 3, size([xDims[0], ...model.output!]), -1, 1);
  const params = randomParams(plan, seed * 101);
  const session = await ort.InferenceSession.create(emitGradient(plan), { intraOpNumThreads: 1 });
  try {
    const feeds: Record<string, ort.Tensor> = {
      input: new ort.Tensor('float32', x, xDims),
      dy: new ort.Tensor('float32', dy, [xDims[0], ...model.output!]),
      step: new ort.Tensor('int64', BigInt64Array.of(BigInt(opts.step ?? 0)), []),
    };
    for (const [name, v] of params) feeds[name] = new ort.Tensor('float32', v, plan.state.find((e) => e.name === name)!.dims);
    const res = await session.run(feeds);
    const outputs: GradRun['outputs'] = {};
    for (const [k, t] of Object.entries(res)) outputs[k] = { data: t.data as Float32Array, dims: [...t.dims] };
    return { plan, x, xDims, dy, params, outputs };
  } finally {
    await session.release();
  }
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/**
 * Checks the gradient run against the float64 reference: the forward output, then for the input
 * and every trained parameter, `directions` random directions u: <grad, u> vs
 * (L(v + εu) - L(v - εu)) / 2ε with L = <forward, dy>.
 */
export function expectGradients(run: GradRun, opts: { directions?: number; eps?: number; tol?: number; skipInput?: boolean } = {}): void {
  const { plan, x, xDims, dy, params } = run;
  const frozen = plan.isFrozen;
  const p64 = new Map([...params].map(([k, v]) => [k, Float64Array.from(v)]));
  const loss = (xv: Float64Array, pv: Params) => dot(refForward(plan.model.root, { data: xv, dims: xDims }, pv, frozen).data, dy);
  const out = refForward(plan.model.root, { data: Float64Array.from(x), dims: xDims }, p64, frozen);
  const got = run.outputs.output;
  expect(got.dims).toEqual(out.dims);
  for (let i = 0; i < out.data.length; i++) {
    if (Math.abs(got.data[i] - out.data[i]) > 1e-4 * (1 + Math.abs(out.data[i]))) expect.fail(`forward output ${i}: ${got.data[i]} vs reference ${out.data[i]}`);
  }
  const eps = opts.eps ?? 1e-5;
  const tol = opts.tol ?? 2e-3;
  const targets: { name: string; value: Float64Array; grad: Float32Array }[] = [];
  if (!opts.skipInput) targets.push({ name: 'input', value: Float64Array.from(x), grad: run.outputs[`${GRAD_PREFIX}input`].data });
  for (const e of plan.state) {
    if (e.kind !== 'param' || !e.updated) continue;
    const g = run.outputs[GRAD_PREFIX + e.name];
    if (!g) expect.fail(`no gradient output for ${e.name}`);
    targets.push({ name: e.name, value: p64.get(e.name)!, grad: g.data });
  }
  expect(targets.length).toBeGreaterThan(0);
  for (const t of targets) {
    for (let d = 0; d < (opts.directions ?? 2); d++) {
      const u = uniform(1000 + d * 7 + t.name.length, t.value.length, -1, 1);
      const shifted = (sign: number) => {
        const v = t.value.map((val, i) => val + sign * eps * u[i]);
        return t.name === 'input' ? loss(v, p64) : loss(Float64Array.from(x), new Map([...p64, [t.name, v]]));
      };
      const numeric = (shifted(1) - shifted(-1)) / (2 * eps);
      const analytic = dot(t.grad, u);
      const scale = Math.sqrt(dot(t.grad, t.grad)) * Math.sqrt(dot(u, u));
      if (Math.abs(numeric - analytic) > tol * (Math.abs(numeric) + 1e-3 * scale) + 1e-5) {
        expect.fail(`${t.name}, direction ${d}: analytic ${analytic}, numeric ${numeric}`);
      }
    }
  }
}

export { NEW_PREFIX, size };
