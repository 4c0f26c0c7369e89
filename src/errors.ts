/**
 * An error caused by the user's input (a file, an option, a data set), not by a bug in cnnc.
 * The CLI prints its message without a stack trace and exits with status 1.
 */
export class UserError extends Error {
  /** `message` is what went wrong, without the file (`reason`); the error's message names the file first. */
  constructor(readonly reason: string, readonly file?: string) {
    super(file ? `${file}: ${reason}` : reason);
    this.name = 'UserError';
  }
}
