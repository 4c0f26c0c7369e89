/**
 * Runs test/helpers/onnx_check.py: the ONNX reference checker plus ONNX's own shape inference.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface OnnxCheckResult {
  ok: boolean;
  /** Inferred shapes by tensor name; dims are numbers or symbolic names. Values of unknown rank are absent. */
  shapes: Record<string, (number | string)[]>;
  error?: string;
}

const SCRIPT = fileURLToPath(new URL('./onnx_check.py', import.meta.url));

let python: string | null | undefined;

/**
 * A Python 3 that can `import onnx`, or null. `python3` on PATH may be a pyenv or venv shim without
 * the Debian python3-onnx package, so the system interpreter is tried too; CNNC_PYTHON overrides.
 */
export function onnxPython(): string | null {
  if (python !== undefined) return python;
  const candidates = [process.env.CNNC_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => !!c);
  python = candidates.find((c) => spawnSync(c, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0) ?? null;
  return python;
}

export function onnxCheck(path: string): OnnxCheckResult {
  const py = onnxPython();
  if (!py) return { ok: false, shapes: {}, error: 'no python3 with the onnx package found (set CNNC_PYTHON)' };
  const r = spawnSync(py, [SCRIPT, path], { encoding: 'utf8', maxBuffer: 64 << 20 });
  try {
    const parsed = JSON.parse(r.stdout) as OnnxCheckResult;
    return { ok: parsed.ok, shapes: parsed.shapes ?? {}, error: parsed.error };
  } catch {
    return { ok: false, shapes: {}, error: `onnx_check.py failed (status ${r.status}): ${r.stderr || r.stdout}` };
  }
}
