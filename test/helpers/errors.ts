import { expect } from 'vitest';
import { UserError } from '../../src/errors.ts';

/** Awaits `p` (or calls it) and expects a UserError whose message matches each pattern or substring. */
export async function expectUserError(p: Promise<unknown> | (() => unknown), ...patterns: (string | RegExp)[]): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UserError);
  for (const pattern of patterns) {
    if (typeof pattern === 'string') expect((err as Error).message).toContain(pattern);
    else expect((err as Error).message).toMatch(pattern);
  }
}
