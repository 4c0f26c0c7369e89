/**
 * What the user sees when a command fails: one line for a mistake in the input (a UserError, or a
 * file system error naming its path), and for a bug in cnnc a short note asking for a report, with
 * the stack trace only under CNNC_DEBUG=1. Never a raw Node trace.
 */
import { UserError } from '../errors.ts';
import { describeFsError } from '../runtime/files.ts';

/** The exit status of an internal error (sysexits' EX_SOFTWARE), apart from a user's mistakes (1). */
export const INTERNAL_ERROR_STATUS = 70;

const FS_CODES = new Set(['ENOENT', 'EACCES', 'EPERM', 'ENOSPC', 'EDQUOT', 'EROFS', 'ENOTDIR', 'EISDIR', 'EEXIST', 'EMFILE', 'ENAMETOOLONG', 'EIO']);

/** A file system error that names a file: the user's environment, not a bug. */
type FsError = NodeJS.ErrnoException & { path: string; dest?: string };

function fsError(e: unknown): FsError | undefined {
  const err = e as NodeJS.ErrnoException;
  return err instanceof Error && typeof err.code === 'string' && FS_CODES.has(err.code) && typeof err.path === 'string'
    ? (err as FsError) : undefined;
}

/** Prints the failure to stderr and returns the exit status. */
export function reportFailure(e: unknown): number {
  if (e instanceof UserError) {
    process.stderr.write(`cnnc: error: ${e.message}\n`);
    return 1;
  }
  const fs = fsError(e);
  if (fs) {
    const other = typeof fs.dest === 'string' ? ` (to ${fs.dest})` : '';
    process.stderr.write(`cnnc: error: ${fs.path}${other}: ${describeFsError(fs)}\n`);
    return 1;
  }
  const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
  const lines = [
    `cnnc: internal error: ${message}`,
    'cnnc: this is a bug in cnnc; please report it with the command you ran and its input files' +
      (process.env.CNNC_DEBUG ? '' : ' (CNNC_DEBUG=1 adds the stack trace)'),
  ];
  if (process.env.CNNC_DEBUG && e instanceof Error && e.stack) lines.push(e.stack);
  process.stderr.write(lines.join('\n') + '\n');
  return INTERNAL_ERROR_STATUS;
}
