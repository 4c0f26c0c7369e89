// Where the cnnc language server is, decided without VS Code (so that tests can run it):
// the `cnnc.path` setting when set, else the workspace's node_modules/.bin/cnnc (a project that
// has cnnc as a dependency), else `cnnc` on PATH. A path ending in .js runs with the editor's Node.
const fs = require('node:fs');
const path = require('node:path');

/** Whether `file` is a file that can be run (on Windows: that exists). */
function runnable(file, platform) {
  try {
    if (!fs.statSync(file).isFile()) return false;
    if (platform !== 'win32') fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The names a command has on this platform: cnnc, or cnnc.cmd, cnnc.exe, ... on Windows. */
function commandNames(name, platform, env) {
  if (platform !== 'win32') return [name];
  const exts = (env.PATHEXT || '.COM;.EXE;.BAT;.CMD').split(';').filter(Boolean);
  return [name, ...exts.map((e) => name + e.toLowerCase())];
}

/**
 * @param {{ setting?: string, workspaceFolders?: string[], env?: Record<string, string | undefined>, platform?: string }} options
 * @returns {{ command: string, via: 'setting' | 'workspace' | 'PATH', node: boolean } | { error: string }}
 */
function findServer({ setting = '', workspaceFolders = [], env = process.env, platform = process.platform } = {}) {
  const asServer = (command, via) => ({ command, via, node: command.endsWith('.js') });
  if (setting.trim()) {
    const configured = setting.trim();
    // a bare name (no directory) is looked up on PATH like any command
    if (!configured.includes('/') && !configured.includes('\\')) {
      const found = onPath(configured, env, platform);
      return found ? asServer(found, 'setting') : { error: `"cnnc.path" is "${configured}", which is not on PATH (${env.PATH ?? ''})` };
    }
    return fs.existsSync(configured) ? asServer(configured, 'setting') : { error: `"cnnc.path" is ${configured}, which does not exist` };
  }
  for (const folder of workspaceFolders) {
    for (const name of commandNames('cnnc', platform, env)) {
      const candidate = path.join(folder, 'node_modules', '.bin', name);
      if (runnable(candidate, platform)) return asServer(candidate, 'workspace');
    }
  }
  const found = onPath('cnnc', env, platform);
  if (found) return asServer(found, 'PATH');
  return {
    error:
      'cnnc was not found: not in the workspace (node_modules/.bin/cnnc) and not on PATH. ' +
      'Install it in the project or globally (npm link in a cnnc checkout), or set "cnnc.path" to the cnnc executable or to a checkout\'s bin/cnnc.js.',
  };
}

function onPath(name, env, platform) {
  const dirs = (env.PATH ?? env.Path ?? '').split(platform === 'win32' ? ';' : ':').filter(Boolean);
  for (const dir of dirs) {
    for (const n of commandNames(name, platform, env)) {
      const candidate = path.join(dir, n);
      if (runnable(candidate, platform)) return candidate;
    }
  }
  return undefined;
}

module.exports = { findServer };
