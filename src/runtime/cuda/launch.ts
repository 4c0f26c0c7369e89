/**
 * Before a `--device cuda` or `--device auto` run makes its session: go ahead, stop with the one
 * problem that matters, fall back to the CPU (auto only, saying so), or run the same command again
 * with LD_LIBRARY_PATH naming the folders where pip, conda or NVIDIA's installers put CUDA.
 *
 * Why a second process: the dynamic loader reads LD_LIBRARY_PATH once, when the process starts, so
 * setting it in process.env does not reach the dlopen of the CUDA provider. The child inherits the
 * terminal and its exit status (or signal) becomes the parent's.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { UserError } from '../../errors.ts';
import { refusalLine, type Diagnosis } from './diagnose.ts';
import { libraryPathWith } from './libraries.ts';

/** Set in the child: it must not probe and re-execute again. */
export const REEXEC_GUARD = 'CNNC_CUDA_REEXEC';

export type LaunchPlan =
  | { kind: 'run' }
  | { kind: 'reexec'; libraryPath: string }
  | { kind: 'refuse'; message: string }
  | { kind: 'cpu'; notice: string };

export function planLaunch(device: 'cuda' | 'auto', d: Diagnosis, env: NodeJS.ProcessEnv): LaunchPlan {
  if (env[REEXEC_GUARD]) return { kind: 'run' };
  if (!d.usable) {
    return device === 'cuda'
      ? { kind: 'refuse', message: `--device cuda: ${refusalLine(d)}` }
      : { kind: 'cpu', notice: `CUDA is not available, running on CPU: ${refusalLine(d)}` };
  }
  if (d.addToLibraryPath.length === 0) return { kind: 'run' };
  return { kind: 'reexec', libraryPath: libraryPathWith(d.addToLibraryPath, env.LD_LIBRARY_PATH) };
}

/** Signals a terminal sends to its whole foreground process group (the child is in it too). */
const TERMINAL_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGQUIT', 'SIGHUP'];
const PASSED_ON: readonly NodeJS.Signals[] = [...TERMINAL_SIGNALS, 'SIGTERM'];

/**
 * Whether the parent passes a signal on. Ctrl-C reaches parent and child at once when they are the
 * terminal's foreground group; passing it on too would make it a second Ctrl-C, which aborts a
 * training run instead of stopping it after the step. `stat` is /proc/self/stat: its pgrp and tpgid
 * fields say whether this process is in the foreground group.
 */
export function mustForward(signal: NodeJS.Signals, stat: string | undefined): boolean {
  if (!TERMINAL_SIGNALS.includes(signal) || stat === undefined) return true;
  // The fields after the command name, which is in parentheses and may itself hold spaces or ')'.
  const [, , pgrp, , , tpgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return pgrp !== tpgid;
}

function selfStat(): string | undefined {
  try {
    return readFileSync('/proc/self/stat', 'utf8');
  } catch {
    return undefined;
  }
}

/** Runs this same command again with `libraryPath` as LD_LIBRARY_PATH, and ends as the child ends. */
export function reexec(libraryPath: string): Promise<never> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, LD_LIBRARY_PATH: libraryPath, [REEXEC_GUARD]: '1' },
  });
  const forward = (signal: NodeJS.Signals) => {
    if (mustForward(signal, selfStat())) child.kill(signal);
  };
  for (const s of PASSED_ON) process.on(s, forward);
  return new Promise((_, reject) => {
    child.on('error', (e) => reject(new UserError(`cannot start cnnc again with the CUDA libraries on LD_LIBRARY_PATH: ${e.message}`)));
    child.on('exit', (code, signal) => {
      for (const s of PASSED_ON) process.off(s, forward);
      if (signal) {
        // Die of the same signal, so that a shell sees what the child saw (130 for Ctrl-C).
        process.kill(process.pid, signal);
        setTimeout(() => process.exit(128 + (constants.signals[signal] ?? 0)), 1000);
        return;
      }
      process.exit(code ?? 1);
    });
  });
}
