/**
 * Steps with a "->" missing in them, as the checker and the expansion estimate both read them:
 * the two must agree, or the estimate counts `b b` (two uses written without their arrow) as one
 * and lets the checker expand twice as much at every level.
 */
import type * as A from './ast.ts';
import type { Env } from './args.ts';
import { lookupLayer } from './layers/index.ts';

/**
 * `conv 8 3x3 pad=1 bn relu` (a line break taken for a "->"): a layer step whose positional
 * arguments run past what its layer or block takes, into a layer's or block's name, stands for
 * several steps, returned in order; undefined for any other step.
 */
export function splitAtMissingArrows(step: A.LayerStep, blocks: ReadonlyMap<string, A.BlockDecl>, env: Env): A.LayerStep[] | undefined {
  const parts: A.LayerStep[] = [];
  let rest = step;
  for (let capacity = positionalCapacity(rest, blocks, env); capacity !== undefined; capacity = positionalCapacity(rest, blocks, env)) {
    let positional = 0;
    const at = rest.args.findIndex((a) => a.name === undefined && positional++ >= capacity && namesStep(a.value, blocks, env));
    if (at < 0) break;
    const head = rest.args[at].value as Extract<A.Expr, { kind: 'name' | 'call' }>;
    const args = rest.args.slice(at + 1);
    const last = rest.args[at - 1] ?? undefined;
    parts.push({ ...rest, args: rest.args.slice(0, at), span: { start: rest.span.start, end: last ? last.span.end : rest.nameSpan.end } });
    rest = {
      kind: 'layer',
      name: head.kind === 'name' ? head.name : head.callee,
      nameSpan: head.kind === 'name' ? head.span : head.calleeSpan,
      args: head.kind === 'call' ? [...head.args, ...args] : args,
      span: { start: head.span.start, end: args.at(-1)?.span.end ?? head.span.end },
    };
  }
  if (parts.length === 0) return undefined;
  parts.push(rest);
  return parts;
}

/** How many positional arguments the layer or block a step names takes; undefined when it names neither (or a parameter). */
function positionalCapacity(step: A.LayerStep, blocks: ReadonlyMap<string, A.BlockDecl>, env: Env): number | undefined {
  if (env.has(step.name)) return undefined;
  const block = blocks.get(step.name);
  if (block) return block.params.length;
  return lookupLayer(step.name)?.args.filter((a) => a.positional).length;
}

/** Whether an argument names a layer kind or block (not a parameter): the start of a step. */
function namesStep(e: A.Expr, blocks: ReadonlyMap<string, A.BlockDecl>, env: Env): boolean {
  const name = e.kind === 'name' ? e.name : e.kind === 'call' ? e.callee : undefined;
  return name !== undefined && !env.has(name) && (blocks.has(name) || lookupLayer(name) !== undefined);
}
