/**
 * `cnnc doctor [--json]`: what will run where. Node, onnxruntime-node and the CUDA provider files,
 * each CUDA and cuDNN library (found where, or where it was looked for), the GPUs, and for each
 * problem the command that fixes it. Exit status 0 when `--device cuda` can run, 1 otherwise.
 */
import { diagnose, doctorJson, formatDoctor } from '../runtime/cuda/diagnose.ts';
import { probeCuda, realProbeEnv, type ProbeEnv } from '../runtime/cuda/probe.ts';
import { findOnnxruntime } from '../runtime/cuda/provider.ts';

export interface DoctorOptions {
  json?: boolean;
}

export async function doctorCommand(opts: DoctorOptions, probeEnv?: ProbeEnv): Promise<number> {
  const probe = await probeCuda(probeEnv ?? realProbeEnv(findOnnxruntime(), true));
  const d = diagnose(probe);
  process.stdout.write(opts.json ? JSON.stringify(doctorJson(probe, d), null, 2) + '\n' : formatDoctor(probe, d));
  return d.usable ? 0 : 1;
}
