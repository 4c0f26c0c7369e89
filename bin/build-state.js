// Whether dist/ (the JavaScript that bin/cnnc.js runs) was built from the current sources.
// Shared by bin/cnnc.js, which refuses to run stale code, and bin/build.js, which skips a build
// that would change nothing.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** Written when a build finishes, with the build's start time as its mtime. */
export const STAMP = path.join('dist', '.build-stamp');

/** The files a build reads: every source, and the compiler settings. */
function inputs(root) {
  const src = path.join(root, 'src');
  const files = readdirSync(src, { recursive: true })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(src, f));
  return [...files, path.join(root, 'tsconfig.json'), path.join(root, 'tsconfig.build.json')];
}

/**
 * Undefined when dist/ is current; otherwise why not, in words. An installed package without
 * src/ is current by definition (it ships dist/ only).
 */
export function staleReason(root) {
  let built;
  try {
    built = statSync(path.join(root, STAMP)).mtimeMs;
  } catch {
    return 'dist/ has not been built';
  }
  let files;
  try {
    files = inputs(root);
  } catch {
    return undefined;
  }
  for (const f of files) {
    let mtime;
    try {
      mtime = statSync(f).mtimeMs;
    } catch {
      continue; // removed since the listing, or a tsconfig that does not exist
    }
    if (mtime > built) return `${path.relative(root, f)} changed after dist/ was built`;
  }
  return undefined;
}
