/**
 * `cnnc cuda install [--from FILE.tgz] [--check]`: ONNX Runtime's CUDA provider from the npm
 * registry, into the onnxruntime-node cnnc uses; and the check every `--device cuda|auto` run
 * makes before it starts (prepareDevice). The work is in src/runtime/cuda/.
 */
import { UserError } from '../errors.ts';
import { diagnose } from '../runtime/cuda/diagnose.ts';
import { planLaunch, reexec, REEXEC_GUARD } from '../runtime/cuda/launch.ts';
import { probeCuda, realProbeEnv } from '../runtime/cuda/probe.ts';
import {
  findOnnxruntime, installProvider, installRefusal, PINNED, PROVIDER_ORT_VERSION, PROVIDER_SPEC, providerProblem,
  readProviderState, type OrtInstall, type ProviderPin,
} from '../runtime/cuda/provider.ts';

export interface CudaInstallOptions {
  from?: string;
  check?: boolean;
}

/** What tests replace: the onnxruntime-node installed into, the checksums, npm, the output. */
export interface CudaInstallDeps {
  ort?: OrtInstall;
  pin?: ProviderPin;
  npm?: string;
  platform?: string;
  arch?: string;
  log?: (line: string) => void;
  print?: (line: string) => void;
}

export async function cudaInstallCommand(opts: CudaInstallOptions, deps: CudaInstallDeps = {}): Promise<number> {
  const ort = deps.ort ?? findOnnxruntime();
  const log = deps.log ?? ((line: string) => process.stderr.write(`cnnc: ${line}\n`));
  const print = deps.print ?? ((line: string) => console.log(line));
  if (opts.check) return checkInstalled(ort, deps, print);
  const r = await installProvider({ ort, from: opts.from, pin: deps.pin, npm: deps.npm, platform: deps.platform, arch: deps.arch, log });
  if (r.status === 'already installed') {
    print(`${PROVIDER_SPEC} is already installed in ${r.binDir} and matches its checksums; nothing to do`);
  } else {
    const got = r.download ? ` (downloaded ${(r.download.bytes / 1e6).toFixed(0)} MB in ${r.download.seconds.toFixed(1)} s)` : '';
    print(`installed the CUDA provider of ONNX Runtime ${PROVIDER_ORT_VERSION} (${PROVIDER_SPEC})${got} in ${r.binDir}`);
  }
  print('next: `npx cnnc doctor` checks the CUDA and cuDNN libraries and the GPU');
  return 0;
}

/** --check: status 0 when the pinned provider is installed intact for this onnxruntime-node. */
async function checkInstalled(ort: OrtInstall | undefined, deps: CudaInstallDeps, print: (line: string) => void): Promise<number> {
  const refusal = installRefusal(ort, deps.platform ?? process.platform, deps.arch ?? process.arch);
  if (refusal) throw new UserError(`${refusal.what}; fix: ${refusal.fix}`);
  const state = await readProviderState(ort!.binDir, { hash: true, pin: deps.pin });
  const problem = providerProblem(state, ort!.version, deps.pin ?? PINNED);
  if (problem) {
    print(`${problem}; fix: npx cnnc cuda install`);
    return 1;
  }
  print(`${PROVIDER_SPEC} is installed in ${ort!.binDir}, intact and matching onnxruntime-node ${ort!.version}`);
  return 0;
}

/** The part of a commander Command the check before a run uses. */
export interface DeviceCommand {
  opts(): { device?: unknown };
  setOptionValue(key: string, value: unknown): unknown;
}

/**
 * Before a command with `--device cuda|auto` runs: stop with the problem and its fix (cuda), switch
 * to the CPU with a notice (auto), or restart with the CUDA libraries' folders on LD_LIBRARY_PATH.
 */
export async function prepareDevice(command: DeviceCommand): Promise<void> {
  const device = command.opts().device;
  if (device !== 'cuda' && device !== 'auto') return;
  // The restarted child: its parent has checked, and probing again would cost it a second.
  if (process.env[REEXEC_GUARD]) return;
  const probe = await probeCuda(realProbeEnv(findOnnxruntime(), false));
  const plan = planLaunch(device, diagnose(probe), process.env);
  if (plan.kind === 'refuse') throw new UserError(plan.message);
  if (plan.kind === 'cpu') {
    process.stderr.write(`cnnc: ${plan.notice}\n`);
    command.setOptionValue('device', 'cpu');
  }
  if (plan.kind === 'reexec') await reexec(plan.libraryPath);
}
