/**
 * How many layers a piece of the syntax tree expands to, worked out before the checker expands it:
 * `repeat n { body }` is n times its body, a block use is its body with the use's arguments.
 * With this the checker refuses a use that would expand past its limit (2^40 layers from 40
 * blocks that each use the one before twice, nested repeats of 10,000) instead of running out
 * of memory on the way there. Sizes are memoised per chain and argument values, so the estimate
 * costs about one walk of the file's text, however large the expansion.
 */
import type * as A from './ast.ts';
import { combinatorOf } from './combinators/index.ts';
import { splitAtMissingArrows } from './arrows.ts';
import { bindBlockArgs, evaluate, showValue, useOf, type AnyArg, type Env } from './args.ts';

const MAX_DEPTH = 128;
/**
 * Steps one estimate may visit. Memoised sizes make a file's estimates about linear in its text;
 * only sizes cut short by the depth limit are not memoised, and where those multiply (blocks that
 * each use a deeply nested one twice) the estimate stops here and calls the use too large. Each
 * visit is a layer of the expansion or a body around some, so this is far above the layer limit.
 */
const MAX_VISITS = 100_000;

export class ExpansionSize {
  private readonly memo = new WeakMap<A.Chain, Map<string, number>>();
  /** How many times the depth limit cut a walk short: such partial sizes are not memoised. */
  private cuts = 0;
  private visits = 0;

  constructor(
    private readonly blocks: ReadonlyMap<string, A.BlockDecl>,
    private readonly recursive: ReadonlySet<string>,
  ) {}

  /** Layers `chain` expands to in `env`; Infinity when it is too large to work out. */
  chain(chain: A.Chain, env: Env, depth = 0): number {
    if (depth === 0) this.visits = 0;
    if (depth > MAX_DEPTH) return this.cuts++, 0; // the checker reports the nesting itself
    if (++this.visits > MAX_VISITS) return Infinity;
    const key = envKey(env);
    let byEnv = this.memo.get(chain);
    const known = byEnv?.get(key);
    if (known !== undefined) return known;
    const cutsBefore = this.cuts;
    let total = 0;
    for (const step of chain.steps) total += this.step(step, env, depth);
    if (this.cuts !== cutsBefore) return total;
    if (!byEnv) this.memo.set(chain, (byEnv = new Map()));
    byEnv.set(key, total);
    return total;
  }

  /** Layers and ops: a block use is its body, a combinator what its entry says (one op and its bodies), any other name one. */
  private step(step: A.Step, env: Env, depth: number): number {
    if (step.kind === 'layer') {
      // As the checker reads it: a step with arrows missing in it is the steps it stands for.
      const parts = splitAtMissingArrows(step, this.blocks, env);
      if (parts) return parts.reduce((n, part) => n + this.step(part, env, depth), 0);
      const use = useOf(step, env);
      const block = 'name' in use ? this.blocks.get(use.name) : undefined;
      return block && 'args' in use ? this.call(block, use.args, step, env, depth) : 1;
    }
    return combinatorOf(step).size(step, env, (c) => this.chain(c, env, depth + 1));
  }

  /** A block use: its body with the use's argument values (0 for a recursive block). */
  private call(block: A.BlockDecl, args: readonly AnyArg[], step: A.LayerStep, env: Env, depth: number): number {
    if (this.recursive.has(block.name)) return 0;
    const inner = bindBlockArgs(block, args, step.span, env, []);
    // As for a repeat's copies: a use of an empty block is still a body to check (and a use that
    // does not fit its block is reported, not expanded).
    return inner ? Math.max(1, this.chain(block.body, inner, depth + 1)) : 1;
  }
}

function envKey(env: Env): string {
  let key = '';
  for (const [name, value] of env) key += `${name}=${showValue(value)};`;
  return key;
}
