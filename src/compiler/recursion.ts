/** Finds blocks that use themselves, directly or through others, so that expansion never loops. */
import type * as A from './ast.ts';
import { stepChains } from './combinators/index.ts';
import { diagnostic, type Diagnostic } from './diagnostics.ts';

function* callsIn(chain: A.Chain): Generator<A.LayerStep> {
  for (const step of chain.steps) {
    if (step.kind === 'layer') yield step;
    for (const inner of stepChains(step)) yield* callsIn(inner);
  }
}

export function findRecursiveBlocks(blocks: ReadonlyMap<string, A.BlockDecl>, diags: Diagnostic[]): Set<string> {
  const recursive = new Set<string>();
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string) => {
    state.set(name, 'visiting');
    stack.push(name);
    for (const call of callsIn(blocks.get(name)!.body)) {
      if (!blocks.has(call.name)) continue;
      if (state.get(call.name) === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(call.name)), call.name];
        cycle.forEach((b) => recursive.add(b));
        diags.push(diagnostic('recursiveBlock', call.nameSpan, { cycle: cycle.join(' → ') }, { hint: 'use `repeat N { ... }` to stack a block several times' }));
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
      if (!recursive.has(name) && [...callsIn(b.body)].some((c) => recursive.has(c.name))) {
        recursive.add(name);
        grew = true;
      }
    }
  }
  return recursive;
}
