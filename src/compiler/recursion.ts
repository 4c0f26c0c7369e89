/** Finds blocks that use themselves, directly or through others, so that expansion never loops. */
import * as A from './ast.ts';
import { stepChains } from './combinators/index.ts';
import { diagnostic, type Diagnostic } from './diagnostics.ts';
import type { Span } from './source.ts';

/** A name a block uses: a step's (its nameSpan), or one in an argument or default, which may pass a block (`act=stem`). */
interface NameUse { name: string; nameSpan?: Span; span: Span }

function* callsIn(chain: A.Chain): Generator<NameUse> {
  for (const step of chain.steps) {
    if (step.kind === 'layer') {
      yield step;
      for (const a of step.args) yield* A.namesIn(a.value);
    }
    for (const inner of stepChains(step)) yield* callsIn(inner);
  }
}

/** The names a block's body and defaults use, but its own parameters (values, not blocks). */
function* usesOf(block: A.BlockDecl): Generator<NameUse> {
  const params = new Set(block.params.map((p) => p.name));
  for (const p of block.params) if (p.default) for (const u of A.namesIn(p.default)) if (!params.has(u.name)) yield u;
  for (const u of callsIn(block.body)) if (!params.has(u.name)) yield u;
}

export function findRecursiveBlocks(blocks: ReadonlyMap<string, A.BlockDecl>, diags: Diagnostic[]): Set<string> {
  const recursive = new Set<string>();
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string) => {
    state.set(name, 'visiting');
    stack.push(name);
    for (const call of usesOf(blocks.get(name)!)) {
      if (!blocks.has(call.name)) continue;
      if (state.get(call.name) === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(call.name)), call.name];
        cycle.forEach((b) => recursive.add(b));
        diags.push(diagnostic('recursiveBlock', call.nameSpan ?? call.span, { cycle: cycle.join(' → ') }, { hint: 'use `repeat N { ... }` to stack a block several times' }));
      } else if (!state.has(call.name)) visit(call.name);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of blocks.keys()) if (!state.has(name)) visit(name);
  // Blocks that use a recursive block cannot expand either.
  let grew = true;
  while (grew) {
    grew = false;
    for (const [name, b] of blocks) {
      if (!recursive.has(name) && [...usesOf(b)].some((c) => recursive.has(c.name))) {
        recursive.add(name);
        grew = true;
      }
    }
  }
  return recursive;
}
