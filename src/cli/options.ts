/**
 * Option values shared by the commands: one parser for positive whole numbers and one check of
 * --device, so every command words the same mistake the same way.
 */
import { UserError } from '../errors.ts';
import type { StepsPerCall } from '../runtime/blocks.ts';
import type { Device } from '../runtime/session.ts';

const DEVICES: readonly string[] = ['cpu', 'cuda', 'auto'] satisfies Device[];

/** `--threads 4` -> 4; anything but a whole number >= 1 is a UserError naming the flag and value. */
export function positiveInt(flag: string, value: string): number {
  const n = /^\s*\+?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UserError(`${flag} ${value}: expected a positive whole number (1, 2, 3, ...)`);
  return n;
}

/** Like positiveInt, for a value that may be absent. */
export function optionalPositiveInt(flag: string, value: string | undefined): number | undefined {
  return value === undefined ? undefined : positiveInt(flag, value);
}

export function device(flag: string, value: string): Device {
  if (!DEVICES.includes(value)) throw new UserError(`${flag} ${value}: expected cpu, cuda or auto`);
  return value as Device;
}

/**
 * The parser commander calls for `--flag <n>`. Its UserError leaves parseAsync like any other and
 * is printed by main as one line, the same line a value checked later would get.
 */
export const positiveIntFlag = (flag: string) => (value: string): number => positiveInt(flag, value);

export const deviceFlag = (flag: string) => (value: string): Device => device(flag, value);

/** A random seed: a whole number in [0, 2^32 - 1]. */
export function seed(flag: string, value: string): number {
  const n = /^\s*\+?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n > 0xffffffff) throw new UserError(`${flag} ${value}: expected a whole number from 0 to 4294967295`);
  return n;
}

export const seedFlag = (flag: string) => (value: string): number => seed(flag, value);

/** `--steps-per-call 8` or `auto`. */
export function stepsPerCall(flag: string, value: string): StepsPerCall {
  if (value.trim() === 'auto') return 'auto';
  try {
    return positiveInt(flag, value);
  } catch {
    throw new UserError(`${flag} ${value}: expected a positive whole number of steps, or auto`);
  }
}
