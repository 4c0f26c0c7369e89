/** `cnnc lsp --stdio`: the language server for editors (src/lsp/server.ts). */
import type { Command } from 'commander';

export function registerLsp(program: Command): void {
  program
    .command('lsp')
    .description('run the language server over stdin/stdout (for editors: diagnostics, hovers with shapes, completion, ...)')
    .option('--stdio', 'talk LSP over stdin/stdout (the only transport; accepted for editors that pass it)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async () => {
      const { runStdioServer } = await import('../lsp/server.ts');
      runStdioServer();
    });
}
