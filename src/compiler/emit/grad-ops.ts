/** ONNX helpers the backward passes of combinators share. */
import type { Dim } from '../onnx/builder.ts';
import type { LowerContext } from './context.ts';

/** Sums gradient contributions (absent ones skipped). */
export function accumulate(ctx: LowerContext, values: (string | undefined)[]): string | undefined {
  const present = values.filter((v): v is string => v !== undefined);
  if (present.length <= 1) return present[0];
  return present.length === 2 ? ctx.op('Add', present) : ctx.op('Sum', present);
}

/** Sums `v` (shaped `from`) down to the broadcast source shape `to` (both with the batch first). */
export function sumTo(ctx: LowerContext, v: string, from: readonly Dim[], to: readonly Dim[]): string {
  const lead = from.length - to.length;
  if (lead > 0) v = ctx.op('ReduceSum', [v, ctx.ints(Array.from({ length: lead }, (_, i) => i))], { keepdims: 0 });
  const axes = to.map((d, i) => (d === 1 && from[i + lead] !== 1 ? i : -1)).filter((i) => i >= 0);
  return axes.length ? ctx.op('ReduceSum', [v, ctx.ints(axes)], { keepdims: 1 }) : v;
}
