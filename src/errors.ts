/**
 * An error caused by the user's input (a file, an option, a data set), not by a bug in cnnc.
 * The CLI prints its message without a stack trace and exits with status 1.
 */
export class UserError extends Error {
  constructor(message: string, readonly file?: string) {
    super(file ? `${file}: ${message}` : message);
    this.name = 'UserError';
  }
}
