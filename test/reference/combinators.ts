/**
 * The float64 forward of each combinator, by keyword, composed from its children's forwards: what
 * the gradient checks differentiate numerically (grad-check.ts's refForward), and what
 * test/registry.test.ts requires of every combinator.
 */
import type { CombinatorKeyword, CombinatorNode, NodeOf } from '../../src/compiler/combinators/types.ts';
import type { Node, SeqNode } from '../../src/compiler/model.ts';
import type { T64 } from './layers.ts';

/** A child's forward on x; `frozen`: every layer inside normalises with its running statistics. */
export type Forward = (child: Node, x: T64, frozen?: boolean) => T64;

/** The checked node a keyword gives: its own, or (repeat, frozen) a sequence. */
type NodeFor<K extends CombinatorKeyword> = K extends CombinatorNode['kind'] ? NodeOf<K> : SeqNode;

export type ReferenceCombinator<K extends CombinatorKeyword> = (node: NodeFor<K>, x: T64, forward: Forward) => T64;

const size = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

/** x · f with f broadcast (numpy rules) to x's dims. */
function broadcastMul(x: T64, f: T64): T64 {
  const rank = x.dims.length;
  const fd = [...Array(rank - f.dims.length).fill(1), ...f.dims];
  const out = new Float64Array(x.data.length);
  const idx = new Array(rank).fill(0);
  for (let i = 0; i < out.length; i++) {
    let rem = i;
    for (let a = rank - 1; a >= 0; a--) { idx[a] = rem % x.dims[a]; rem = Math.floor(rem / x.dims[a]); }
    let j = 0;
    for (let a = 0; a < rank; a++) j = j * fd[a] + (fd[a] === 1 ? 0 : idx[a]);
    out[i] = x.data[i] * f.data[j];
  }
  return { data: out, dims: x.dims };
}

const sum = (parts: T64[]): T64 => ({ data: parts[0].data.map((_, i) => parts.reduce((s, p) => s + p.data[i], 0)), dims: parts[0].dims });

function concatChannels(parts: T64[]): T64 {
  const [N] = parts[0].dims;
  const inner = size(parts[0].dims.slice(2));
  const C = parts.reduce((s, p) => s + p.dims[1], 0);
  const out = new Float64Array(N * C * inner);
  for (let n = 0; n < N; n++) {
    let offset = 0;
    for (const p of parts) {
      const pc = p.dims[1];
      out.set(p.data.subarray(n * pc * inner, (n + 1) * pc * inner), (n * C + offset) * inner);
      offset += pc;
    }
  }
  return { data: out, dims: [N, C, ...parts[0].dims.slice(2)] };
}

/** The channels of x cut into consecutive parts of `sizes` channels (the inverse of concatChannels). */
function splitChannels(x: T64, sizes: readonly number[]): T64[] {
  const [N, C, ...rest] = x.dims;
  const inner = size(rest);
  let offset = 0;
  return sizes.map((pc) => {
    const data = new Float64Array(N * pc * inner);
    for (let n = 0; n < N; n++) data.set(x.data.subarray((n * C + offset) * inner, (n * C + offset + pc) * inner), n * pc * inner);
    offset += pc;
    return { data, dims: [N, pc, ...rest] };
  });
}

export const referenceCombinators: { [K in CombinatorKeyword]: ReferenceCombinator<K> } = {
  repeat: (node, x, forward) => node.items.reduce((v, copy) => forward(copy, v), x),
  residual: (node, x, forward) => sum([forward(node.body, x), node.shortcut ? forward(node.shortcut, x) : x]),
  concat: (node, x, forward) => concatChannels(node.branches.map((b) => forward(b, x))),
  add: (node, x, forward) => sum(node.branches.map((b) => forward(b, x))),
  split: (node, x, forward) => concatChannels(splitChannels(x, node.sizes).map((part, i) => forward(node.branches[i], part))),
  gate: (node, x, forward) => broadcastMul(x, forward(node.body, x)),
  frozen: (node, x, forward) => node.items.reduce((v, item) => forward(item, v, true), x),
};

/** The reference of one keyword, typed for its node. */
export const referenceOf = <K extends CombinatorKeyword>(keyword: K): ReferenceCombinator<K> => referenceCombinators[keyword];
