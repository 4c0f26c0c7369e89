#!/usr/bin/env node
// `npm run build`: compiles src/ to dist/ with tsc (tsconfig.build.json), then points dist/ at
// chevrotain's single-file ESM bundle, and stamps the result. `--force` builds even when current.
//
// Why the bundle: chevrotain's package entry loads lodash-es as some 600 modules, which is most of
// cnnc's start-up time (about 450 ms of a ~600 ms `cnnc check`); its own bundle, shipped in the
// same package and version, loads in ~20 ms. The package's exports map hides it, so a copy goes
// to dist/vendor/ and dist/'s imports of 'chevrotain' are rewritten to it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { STAMP, staleReason } from './build-state.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const dist = path.join(root, 'dist');
const VENDORED = path.join(dist, 'vendor', 'chevrotain.mjs');

/** Runs tsc; returns its exit status (non-zero for type errors, after which it has still emitted). */
function compile() {
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (r.error || r.signal) throw r.error ?? new Error(`tsc was killed by ${r.signal}`);
  return r.status ?? 1;
}

/** Copies chevrotain's bundle (lib/chevrotain.mjs, beside the entry lib/src/api.js) into dist/. */
function vendorChevrotain() {
  const entry = require.resolve('chevrotain');
  mkdirSync(path.dirname(VENDORED), { recursive: true });
  copyFileSync(path.join(path.dirname(entry), '..', 'chevrotain.mjs'), VENDORED);
  const from = /(from\s+|import\s*\(\s*)(['"])chevrotain\2/g;
  for (const f of readdirSync(dist, { recursive: true })) {
    if (!f.endsWith('.js')) continue;
    const file = path.join(dist, f);
    const text = readFileSync(file, 'utf8');
    let rel = path.relative(path.dirname(file), VENDORED).split(path.sep).join('/');
    if (!rel.startsWith('.')) rel = `./${rel}`;
    const out = text.replace(from, (_, head, q) => `${head}${q}${rel}${q}`);
    if (out !== text) writeFileSync(file, out);
  }
}

const force = process.argv.includes('--force');
const reason = staleReason(root);
if (!force && !reason) {
  console.error('cnnc build: dist/ is up to date');
} else {
  // The stamp gets the start time, so a source saved during the build still counts as newer.
  const started = new Date();
  const status = compile();
  vendorChevrotain();
  writeFileSync(path.join(root, STAMP), 'built by bin/build.js from src/; see bin/build-state.js\n');
  utimesSync(path.join(root, STAMP), started, started);
  const took = `${((Date.now() - started.getTime()) / 1000).toFixed(1)} s`;
  if (status === 0) console.error(`cnnc build: dist/ built (${took})`);
  else {
    // tsconfig.build.json emits despite type errors, so dist/ matches the sources; the build still fails.
    console.error(`cnnc build: dist/ built from the current sources (${took}), but tsc reported the type errors above`);
    process.exitCode = status;
  }
}
