/**
 * The Python 3 the tests run PyTorch and ONNX's checker in. `python3` on PATH may be a pyenv or
 * venv shim without Debian's packages (python3-torch, python3-torchvision, python3-onnx), so the
 * system interpreter is tried first; CNNC_PYTHON overrides both.
 */
import { spawnSync } from 'node:child_process';

const found = new Map<string, string | null>();

/** An interpreter that can `import` every module named (`'torch, torchvision'`), or null. */
export function pythonWith(modules: string): string | null {
  let python = found.get(modules);
  if (python === undefined) {
    const candidates = [process.env.CNNC_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => !!c);
    python = candidates.find((c) => spawnSync(c, ['-c', `import ${modules}`], { stdio: 'ignore' }).status === 0) ?? null;
    found.set(modules, python);
  }
  return python;
}
