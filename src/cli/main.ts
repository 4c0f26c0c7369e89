/** The `cnnc` command line: a thin shell over the compiler and runtime; each verb lives in its own file. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.ts';
import { registerCheck } from './check.ts';
import { registerSummary } from './summary.ts';
import { registerTrain } from './train.ts';
import { registerCompile } from './compile.ts';
import { registerFmt } from './fmt.ts';
import { registerLsp } from './lsp.ts';
import { registerPredict } from './predict.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('cnnc')
    .description('compile .cnn CNN architectures to checked ONNX inference and training graphs')
    .version(pkg.version)
    .showHelpAfterError();
  registerCheck(program);
  registerSummary(program);
  registerTrain(program);
  registerCompile(program);
  registerFmt(program);
  registerLsp(program);
  registerPredict(program);
  return program;
}

/** User errors print one clear line; anything else is a bug and keeps its stack trace. */
async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof UserError) {
      console.error(`cnnc: error: ${e.message}`);
      process.exitCode = 1;
    } else throw e;
  }
}

await main();
