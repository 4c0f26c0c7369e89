#!/usr/bin/env node
// Runs the compiled CLI in dist/ (built by `npm run build`, which `npm ci` runs as `prepare`).
// Stale or missing JavaScript is refused rather than run: what runs must be what the sources say.
import { fileURLToPath } from 'node:url';
import { staleReason } from './build-state.js';

const root = fileURLToPath(new URL('..', import.meta.url));
if (process.env.CNNC_FROM_SOURCE) {
  // For work on cnnc itself: the TypeScript sources through tsx (a dev dependency), no build.
  const tsx = await import('tsx/esm/api').catch(() => {
    process.stderr.write('cnnc: CNNC_FROM_SOURCE needs tsx, a dev dependency (npm ci in a clone of cnnc installs it)\n');
    process.exit(1);
  });
  tsx.register();
  await import('../src/cli/main.ts');
} else {
  const stale = staleReason(root);
  if (stale) {
    process.stderr.write(`cnnc: ${stale}; run \`npm run build\` in ${root.replace(/\/$/, '')} (or set CNNC_FROM_SOURCE=1 to run the sources)\n`);
    process.exit(1);
  }
  await import('../dist/cli/main.js');
}
