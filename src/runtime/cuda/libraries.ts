/**
 * The CUDA and cuDNN libraries the CUDA provider loads, and the places they are looked for: the
 * dynamic loader's own path first, then where pip, conda and NVIDIA's installers put them.
 *
 * The list comes from the provider itself: `readelf -d libonnxruntime_providers_cuda.so` names
 * libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and libcuda.so.1; cuDNN
 * (libcudnn.so.9), cuFFT (libcufft.so.12) and NVRTC (libnvrtc.so.13) it opens by name at run time.
 */

export interface CudaLibrary {
  soname: string;
  /** What it is, in the doctor's table. */
  role: string;
  /** The pip package that ships it (CUDA 13 wheels), or none for the driver's own library. */
  pip?: string;
  /** When set, the provider runs without it; this says what is lost. */
  optional?: string;
}

export const CUDA_LIBRARIES: readonly CudaLibrary[] = [
  { soname: 'libcuda.so.1', role: 'NVIDIA driver' },
  { soname: 'libcudart.so.13', role: 'CUDA 13 runtime', pip: 'nvidia-cuda-runtime==13.*' },
  { soname: 'libcublas.so.13', role: 'cuBLAS', pip: 'nvidia-cublas==13.*' },
  { soname: 'libcublasLt.so.13', role: 'cuBLASLt', pip: 'nvidia-cublas==13.*' },
  { soname: 'libcurand.so.10', role: 'cuRAND', pip: 'nvidia-curand==10.*' },
  { soname: 'libcudnn.so.9', role: 'cuDNN 9', pip: 'nvidia-cudnn-cu13==9.*' },
  { soname: 'libcufft.so.12', role: 'cuFFT', pip: 'nvidia-cufft==12.*', optional: 'only FFT operators need it; cnnc emits none' },
  { soname: 'libnvrtc.so.13', role: 'NVRTC', pip: 'nvidia-cuda-nvrtc==13.*', optional: 'only run-time compiled kernels need it' },
];

/** Where a folder of libraries comes from; the first three are what the loader itself searches. */
export type PlaceKind = 'LD_LIBRARY_PATH' | 'ldconfig' | 'system' | 'pip' | 'conda' | 'CUDA_HOME' | 'CUDA_PATH' | 'CUDA toolkit';

export interface Place {
  dir: string;
  kind: PlaceKind;
  /** For pip: the Python whose nvidia wheels these are. */
  python?: string;
}

export const onLoaderPath = (place: Place): boolean =>
  place.kind === 'LD_LIBRARY_PATH' || place.kind === 'ldconfig' || place.kind === 'system';

/** The loader's built-in folders (Debian's multiarch ones, and other distributions' lib64). */
export const SYSTEM_DIRS: readonly string[] = [
  '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib',
];

/**
 * `ldconfig -p` as soname -> path, for the x86-64 entries only (a 32-bit libcuda.so.1 would not
 * load into a 64-bit Node). Lines look like `\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1`.
 */
export function parseLdconfig(text: string): Record<string, string> {
  const cache: Record<string, string> = {};
  for (const m of text.matchAll(/^\s+(\S+) \(([^)]*)\)[^\n]*? => (\S+)\s*$/gm)) {
    if (m[2].includes('x86-64') && !(m[1] in cache)) cache[m[1]] = m[3];
  }
  return cache;
}

/** LD_LIBRARY_PATH's folders; an empty entry means the current folder to the loader, so it is kept as '.'. */
export function splitPath(value: string | undefined): string[] {
  return value ? value.split(':').map((d) => d || '.') : [];
}

/** LD_LIBRARY_PATH with `dirs` after the user's own folders, which keep their precedence. */
export function libraryPathWith(dirs: readonly string[], current: string | undefined): string {
  return [...(current ? [current] : []), ...dirs].join(':');
}
