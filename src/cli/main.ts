/**
 * The `cnnc` command line: a thin shell over the compiler and runtime. commands.ts declares the
 * commands; each verb's work lives in its own file, loaded only when that verb runs.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { defineCommands } from './commands.ts';
import { reportFailure } from './failure.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('cnnc')
    .description('compile .cnn CNN architectures to checked ONNX inference and training graphs')
    .version(pkg.version)
    .showHelpAfterError('(cnnc --help lists the commands; cnnc COMMAND --help, its options)');
  defineCommands(program);
  return program;
}

/**
 * A reader that goes away (`cnnc check --list-layers | head`) ends the command quietly, as it ends
 * Unix tools; status 141 is what a shell reports for a process killed by SIGPIPE.
 */
function exitQuietlyOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(141);
    process.exitCode = reportFailure(e);
  });
}

async function main(): Promise<void> {
  exitQuietlyOnClosedPipe(process.stdout);
  exitQuietlyOnClosedPipe(process.stderr);
  // Errors outside the command's promise (an emitter's 'error', a stray rejection) get the same words.
  process.on('uncaughtException', (e) => process.exit(reportFailure(e)));
  process.on('unhandledRejection', (e) => process.exit(reportFailure(e)));
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    process.exitCode = reportFailure(e);
  }
}

await main();
