// `npm run build` (and vscode:prepublish): bundles the client with esbuild into dist/extension.js,
// so that the package ships one file instead of vscode-languageclient's hundreds, and, inside the
// cnnc repository, refreshes syntaxes/ from grammar/cnn.tmLanguage.json. Outside it (this folder
// copied elsewhere) the committed copy in syntaxes/ is used as it is.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const grammar = path.join(here, '..', '..', 'grammar', 'cnn.tmLanguage.json');
const copy = path.join(here, 'syntaxes', 'cnn.tmLanguage.json');
if (existsSync(grammar)) {
  mkdirSync(path.dirname(copy), { recursive: true });
  copyFileSync(grammar, copy);
  console.log('grammar: ../../grammar/cnn.tmLanguage.json -> syntaxes/cnn.tmLanguage.json');
} else if (!existsSync(copy)) {
  console.error('build: syntaxes/cnn.tmLanguage.json is missing and there is no ../../grammar to copy it from');
  process.exit(1);
}

await build({
  entryPoints: [path.join(here, 'extension.js')],
  outfile: path.join(here, 'dist', 'extension.js'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18', // VS Code 1.82, the oldest this extension supports, runs extensions on Node 18
  external: ['vscode'],
  minify: true,
  sourcemap: false,
  logLevel: 'info',
});
