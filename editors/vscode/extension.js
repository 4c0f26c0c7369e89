// The VS Code client for the cnnc language server: starts `cnnc lsp --stdio` for .cnn files.
// Which cnnc: see server-path.js. Settings: cnnc.path, cnnc.args, cnnc.debounceMs.
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');
const { findServer } = require('./server-path.js');

/** @type {LanguageClient | undefined} */
let client;

function serverOptions(found) {
  const config = vscode.workspace.getConfiguration('cnnc');
  const args = [...(config.get('args') || []), 'lsp'];
  // TransportKind.stdio makes the client append --stdio.
  if (found.node) return { module: found.command, args, transport: TransportKind.stdio };
  return { command: found.command, args, transport: TransportKind.stdio, options: { shell: process.platform === 'win32' } };
}

function locate() {
  const config = vscode.workspace.getConfiguration('cnnc');
  return findServer({
    setting: config.get('path') || '',
    workspaceFolders: (vscode.workspace.workspaceFolders || []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath),
  });
}

async function explain(message) {
  const choice = await vscode.window.showErrorMessage(`cnnc: ${message}`, 'Open Settings');
  if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'cnnc.path');
}

async function start() {
  const found = locate();
  if ('error' in found) return void explain(found.error);
  const config = vscode.workspace.getConfiguration('cnnc');
  client = new LanguageClient('cnnc', 'cnnc', serverOptions(found), {
    documentSelector: [
      { scheme: 'file', language: 'cnn' },
      { scheme: 'untitled', language: 'cnn' },
    ],
    initializationOptions: { debounceMs: config.get('debounceMs') },
    outputChannelName: 'cnnc',
  });
  client.outputChannel.appendLine(`cnnc: ${found.command} lsp --stdio (from ${found.via === 'setting' ? 'cnnc.path' : found.via})`);
  try {
    await client.start();
  } catch (e) {
    client = undefined;
    void explain(`could not start \`${found.command} lsp --stdio\` (${e instanceof Error ? e.message : e}).`);
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
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      if (!client) void start(); // a folder with cnnc in node_modules may have been added
    }),
  );
  await start();
}

async function deactivate() {
  if (client) await client.stop();
}

module.exports = { activate, deactivate };
