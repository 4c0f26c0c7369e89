// The VS Code client for the cnnc language server: starts `cnnc lsp --stdio` for .cnn files.
// Settings: cnnc.path (the executable, or a bin/cnnc.js to run with Node), cnnc.args, cnnc.debounceMs.
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

/** @type {LanguageClient | undefined} */
let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration('cnnc');
  const path = config.get('path') || 'cnnc';
  const args = [...(config.get('args') || []), 'lsp'];
  // TransportKind.stdio makes the client append --stdio.
  if (path.endsWith('.js')) return { module: path, args, transport: TransportKind.stdio };
  return { command: path, args, transport: TransportKind.stdio, options: { shell: process.platform === 'win32' } };
}

async function start() {
  const config = vscode.workspace.getConfiguration('cnnc');
  client = new LanguageClient('cnnc', 'cnnc', serverOptions(), {
    documentSelector: [
      { scheme: 'file', language: 'cnn' },
      { scheme: 'untitled', language: 'cnn' },
    ],
    initializationOptions: { debounceMs: config.get('debounceMs') },
    outputChannelName: 'cnnc',
  });
  try {
    await client.start();
  } catch (e) {
    void vscode.window.showErrorMessage(`cnnc: could not start \`${config.get('path') || 'cnnc'} lsp --stdio\` (${e instanceof Error ? e.message : e}). Set "cnnc.path" to the cnnc executable.`);
  }
}

async function restart() {
  if (client) await client.stop().catch(() => undefined);
  client = undefined;
  await start();
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('cnnc.restartServer', restart),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('cnnc.path') || e.affectsConfiguration('cnnc.args') || e.affectsConfiguration('cnnc.debounceMs')) void restart();
    }),
  );
  await start();
}

async function deactivate() {
  if (client) await client.stop();
}

module.exports = { activate, deactivate };
