/**
 * A small, honest TrainStepRunner for trainer tests: multinomial logistic regression (one dense layer
 * on the flattened input, softmax cross-entropy) with real gradients and real SGD (momentum) or Adam
 * updates, in plain TypeScript. Parameters and optimizer state are float32, like the ONNX graphs.
 */
import type { TrainConfig } from '../../src/compiler/train-config.ts';
import type { StepBatch, StepResult, TrainState, TrainStepRunner } from '../../src/runtime/train-step.ts';
import { seededRandom } from '../../src/runtime/dataset.ts';

export class SoftmaxRunner implements TrainStepRunner {
  readonly labelType: 'int32' | 'int64' = 'int64';
  readonly device = 'cpu' as const;
  readonly fixedBatch: boolean;
  private tensors = new Map<string, { dims: number[]; data: Float32Array }>();
  /** Every step call, for tests: (lr, step, count). */
  readonly calls: { lr: number; step: number; count: number }[] = [];

  constructor(readonly inputs: number, readonly classes: number, private readonly config: TrainConfig, opts: { fixedBatch?: boolean } = {}) {
    this.fixedBatch = opts.fixedBatch ?? false;
    const rand = seededRandom(config.seed * 7919 + 1);
    const bound = 1 / Math.sqrt(inputs);
    const w = Float32Array.from({ length: classes * inputs }, () => (2 * rand() - 1) * bound);
    const b = Float32Array.from({ length: classes }, () => (2 * rand() - 1) * bound);
    this.tensors.set('fc.weight', { dims: [classes, inputs], data: w });
    this.tensors.set('fc.bias', { dims: [classes], data: b });
    for (const name of ['fc.weight', 'fc.bias']) {
      const dims = this.tensors.get(name)!.dims;
      const size = dims.reduce((a, c) => a * c, 1);
      const slots = config.optimizer.kind === 'sgd' ? ['v'] : ['m', 'v'];
      for (const s of slots) this.tensors.set(`optim.${name}.${s}`, { dims, data: new Float32Array(size) });
    }
  }

  /** Logits, loss and gradient of the mean loss w.r.t. the logits, in float64. */
  private forward(batch: StepBatch): { loss: number; correct: number; dlogits: Float64Array } {
    const { inputs: d, classes: k } = this;
    const w = this.tensors.get('fc.weight')!.data, b = this.tensors.get('fc.bias')!.data;
    const dlogits = new Float64Array(batch.count * k);
    let loss = 0, correct = 0;
    for (let n = 0; n < batch.count; n++) {
      const label = Number(batch.y[n]);
      if (!(label >= 0 && label < k)) throw new Error(`label ${label} out of range`);
      const z = new Float64Array(k);
      for (let c = 0; c < k; c++) {
        let s = b[c];
        for (let i = 0; i < d; i++) s += w[c * d + i] * batch.x[n * d + i];
        z[c] = s;
      }
      let max = -Infinity, arg = 0;
      for (let c = 0; c < k; c++) if (z[c] > max) { max = z[c]; arg = c; }
      let sum = 0;
      for (let c = 0; c < k; c++) sum += Math.exp(z[c] - max);
      loss += Math.log(sum) + max - z[label];
      if (arg === label) correct++;
      for (let c = 0; c < k; c++) dlogits[n * k + c] = (Math.exp(z[c] - max) / sum - (c === label ? 1 : 0)) / batch.count;
    }
    return { loss: loss / batch.count, correct, dlogits };
  }

  async run(batch: StepBatch, lr: number, step: number): Promise<StepResult> {
    if (this.fixedBatch && batch.count !== this.config.batch) throw new Error(`fixed batch ${this.config.batch}, got ${batch.count}`);
    this.calls.push({ lr, step, count: batch.count });
    const { inputs: d, classes: k } = this;
    const { loss, correct, dlogits } = this.forward(batch);
    const gw = new Float64Array(k * d), gb = new Float64Array(k);
    for (let n = 0; n < batch.count; n++) {
      for (let c = 0; c < k; c++) {
        const g = dlogits[n * k + c];
        gb[c] += g;
        for (let i = 0; i < d; i++) gw[c * d + i] += g * batch.x[n * d + i];
      }
    }
    this.update('fc.weight', gw, lr, step);
    this.update('fc.bias', gb, lr, step);
    return { loss, correct };
  }

  private update(name: string, grad: Float64Array, lr: number, step: number): void {
    const o = this.config.optimizer;
    const p = this.tensors.get(name)!.data;
    if (o.kind === 'sgd') {
      const v = this.tensors.get(`optim.${name}.v`)!.data;
      for (let i = 0; i < p.length; i++) {
        const g = grad[i] + o.weight_decay * p[i];
        v[i] = o.momentum * v[i] + g;
        p[i] -= lr * (o.nesterov ? g + o.momentum * v[i] : v[i]);
      }
    } else {
      const m = this.tensors.get(`optim.${name}.m`)!.data, v = this.tensors.get(`optim.${name}.v`)!.data;
      const t = step + 1;
      for (let i = 0; i < p.length; i++) {
        let g = grad[i];
        if (o.kind === 'adam') g += o.weight_decay * p[i];
        else p[i] -= lr * o.weight_decay * p[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
        const mh = m[i] / (1 - o.beta1 ** t), vh = v[i] / (1 - o.beta2 ** t);
        p[i] -= (lr * mh) / (Math.sqrt(vh) + o.eps);
      }
    }
  }

  async evaluate(batch: StepBatch): Promise<StepResult> {
    const { loss, correct } = this.forward(batch);
    return { loss, correct };
  }

  state(): TrainState {
    return new Map([...this.tensors].map(([n, t]) => [n, { dims: [...t.dims], data: t.data.slice() }]));
  }

  load(state: TrainState): void {
    for (const [name, t] of this.tensors) {
      const s = state.get(name);
      if (!s) throw new Error(`state has no ${name}`);
      if (s.dims.join() !== t.dims.join()) throw new Error(`${name}: dims ${s.dims} != ${t.dims}`);
      t.data.set(s.data);
    }
  }
}
