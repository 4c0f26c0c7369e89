/**
 * For test/cuda.test.ts: a command that re-executes itself as `--device cuda` does when CUDA's
 * libraries are off the loader path (launch.ts), so the test can see what the child gets and how
 * its end reaches the parent. `node --import tsx reexec-child.ts MODE` with MODE:
 *   exit    the child prints what it received and exits with status 7
 *   signals the child counts SIGINTs, says when it is ready, and ends 300 ms after the first
 *           (status 130), or dies of a SIGTERM it receives
 */
import type { Diagnosis } from '../../src/runtime/cuda/diagnose.ts';
import { planLaunch, reexec, REEXEC_GUARD } from '../../src/runtime/cuda/launch.ts';

const mode = process.argv[2];
const found: Diagnosis = { usable: true, problems: [], notes: [], libraries: [], addToLibraryPath: ['/fake/cu13/lib', '/fake/cudnn/lib'] };
const plan = planLaunch('cuda', found, process.env);

if (plan.kind === 'reexec') {
  await reexec(plan.libraryPath);
} else if (mode === 'exit') {
  console.log(JSON.stringify({ libraryPath: process.env.LD_LIBRARY_PATH, guard: process.env[REEXEC_GUARD], argv: process.argv.slice(2), plan: plan.kind }));
  process.exit(7);
} else {
  let sigints = 0;
  process.on('SIGINT', () => {
    if (++sigints === 1) setTimeout(() => { console.log(JSON.stringify({ sigints })); process.exit(130); }, 300);
  });
  process.on('SIGTERM', () => {
    console.log(JSON.stringify({ sigterm: true }));
    process.removeAllListeners('SIGTERM');
    process.kill(process.pid, 'SIGTERM');
  });
  console.log('ready');
  setInterval(() => {}, 1000);
}
