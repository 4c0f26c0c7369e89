/**
 * Runs test/helpers/onnx_check.py: the ONNX reference checker plus ONNX's own shape inference.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pythonWith } from './python.ts';

export interface OnnxCheckResult {
  ok: boolean;
  /** Inferred shapes by tensor name; dims are numbers or symbolic names. Values of unknown rank are absent. */
  shapes: Record<string, (number | string)[]>;
  error?: string;
}

const SCRIPT = fileURLToPath(new URL('./onnx_check.py', import.meta.url));

/** A Python 3 that can `import onnx` (Debian's python3-onnx), or null. */
export const onnxPython = (): string | null => pythonWith('onnx');

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
