/**
 * The float64 forward of each combinator, by keyword, over its children's forwards: what the
 * gradient checks differentiate numerically, and what test/registry.test.ts requires of every
 * combinator in the table (src/compiler/combinators/).
 */
import { seqRole } from '../../src/compiler/combinators/index.ts';
import type { CombinatorKeyword, CombinatorNode, NodeOf } from '../../src/compiler/combinators/types.ts';
import type { Node, SeqNode } from '../../src/compiler/model.ts';
import type { T64 } from './layers.ts';

const size = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

/** The forward of a child node on an input. */
export type Forward = (node: Node, x: T64) => T64;

/** The checked node a keyword makes: its own kind, or for repeat and frozen a sequence. */
type NodeFor<K extends CombinatorKeyword> = K extends CombinatorNode['kind'] ? NodeOf<K> : SeqNode;

export type ReferenceCombinator<K extends CombinatorKeyword> = (node: NodeFor<K>, x: T64, forward: Forward) => T64;

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

/** The parts joined on the channel axis. */
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

const sequence = (node: SeqNode, x: T64, forward: Forward): T64 => node.items.reduce((v, item) => forward(item, v), x);

const sum = (parts: T64[]): T64 => ({ data: parts[0].data.map((_, i) => parts.reduce((s, o) => s + o.data[i], 0)), dims: parts[0].dims });

export const referenceCombinators: { [K in CombinatorKeyword]: ReferenceCombinator<K> } = {
  repeat: sequence,
  // The layers inside run frozen by their own references (bn on its running statistics).
  frozen: sequence,
  residual: (node, x, forward) => sum([forward(node.body, x), node.shortcut ? forward(node.shortcut, x) : x]),
  concat: (node, x, forward) => concatChannels(node.branches.map((b) => forward(b, x))),
  add: (node, x, forward) => sum(node.branches.map((b) => forward(b, x))),
  split: (node, x, forward) => concatChannels(splitChannels(x, node.sizes).map((part, i) => forward(node.branches[i], part))),
  gate: (node, x, forward) => broadcastMul(x, forward(node.body, x)),
};

/** The forward of a sequence or combinator node: a block's expansion (and a body or branch) is its items in order. */
export function referenceOf(node: Exclude<Node, { kind: 'layer' }>, x: T64, forward: Forward): T64 {
  if (node.kind !== 'seq') return (referenceCombinators[node.kind] as ReferenceCombinator<CombinatorNode['kind']>)(node as never, x, forward);
  const role = seqRole(node);
  return role === 'block' ? sequence(node, x, forward) : referenceCombinators[role](node, x, forward);
}
