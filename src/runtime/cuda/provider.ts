/**
 * ONNX Runtime's CUDA execution provider, from the npm registry alone: which build cnnc uses, its
 * pinned checksums, where onnxruntime-node loads it from, and installing it there
 * (`cnnc cuda install`).
 *
 * onnxruntime-node's npm package carries no CUDA provider (its install script fetches one from
 * NuGet, which the project's .npmrc turns off). The npm registry does carry Microsoft's Linux x64
 * CUDA 13 provider libraries, repackaged for Unity in one package; a provider loads only into the
 * exact ONNX Runtime release it was built with, so package.json pins onnxruntime-node to it.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { UserError } from '../../errors.ts';
import { describeFsError, ensureWritableDir, alive, writeFileAtomic } from '../files.ts';

export const PROVIDER_PACKAGE = 'com.github.asus4.onnxruntime.linux-x64-gpu';
export const PROVIDER_VERSION = '0.4.9';
export const PROVIDER_SPEC = `${PROVIDER_PACKAGE}@${PROVIDER_VERSION}`;
/** The ONNX Runtime release the provider libraries were built with (the package's README says so). */
export const PROVIDER_ORT_VERSION = '1.29.0';
/** The tarball's size, for the message before a download. */
export const PROVIDER_TARBALL_MB = 179;
/** Where the libraries sit inside the package's tarball. */
const TARBALL_DIR = 'package/Plugins/Linux/x64';

/** What a download is checked against: the registry's sha512 of the tarball and each library's sha256. */
export interface ProviderPin {
  integrity: string;
  /** File name -> sha256 (hex); the shared library first, the order in which they are installed. */
  files: Readonly<Record<string, string>>;
}

/**
 * Taken from `npm view com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 dist.integrity` and from
 * the extracted files. The TensorRT provider in the same package is left out: cnnc offers no
 * TensorRT device.
 */
export const PINNED: ProviderPin = {
  integrity: 'sha512-FopIhNE/Ng+v2X65wVc9clPCBCvhvA53Hxo2U0Kf5fGdVsC7iCA+mZ0KLWggcQAj7TIZ6pNidR4AC10g74Xo6w==',
  files: {
    'libonnxruntime_providers_shared.so': 'c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772',
    'libonnxruntime_providers_cuda.so': '56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037',
  },
};

/** Written beside the libraries once they are in place: what was installed, for `cnnc doctor`. */
export const RECORD_FILE = 'cnnc-cuda-provider.json';

export interface ProviderRecord {
  package: string;
  version: string;
  onnxruntime: string;
  integrity: string;
  files: Record<string, { sha256: string; size: number }>;
}

// ---------------------------------------------------------------------------------------------
// The installed onnxruntime-node

export interface OrtInstall {
  /** The package's folder. */
  root: string;
  version: string;
  /** Where libonnxruntime.so.1 is, and where ONNX Runtime looks for provider libraries. */
  binDir: string;
}

/** The onnxruntime-node package at `root`, or undefined when its package.json cannot be read. */
export function ortAt(root: string): OrtInstall | undefined {
  try {
    const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    return { root, version, binDir: path.join(root, 'bin', 'napi-v6', process.platform, process.arch) };
  } catch {
    return undefined;
  }
}

/** The onnxruntime-node this cnnc imports (its entry is dist/index.js inside the package). */
export function findOnnxruntime(): OrtInstall | undefined {
  try {
    const main = createRequire(import.meta.url).resolve('onnxruntime-node');
    return ortAt(path.join(path.dirname(main), '..'));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// What is installed now

export interface ProviderState {
  binDir: string;
  /** Each pinned file: its size and (when hashed) sha256, or null when missing. */
  files: Record<string, { size: number; sha256?: string } | null>;
  record?: ProviderRecord;
  /** Why the record could not be read, when it exists but is not JSON. */
  recordError?: string;
}

export async function sha256File(file: string): Promise<string> {
  return hashFile(file, 'sha256', 'hex');
}

async function hashFile(file: string, algorithm: string, encoding: 'hex' | 'base64'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest(encoding);
}

/**
 * The provider files in binDir and their record. Hashing reads some 230 MB (about a second), so
 * the check before a run compares sizes only and `cnnc doctor` hashes.
 */
export async function readProviderState(binDir: string, opts: { hash: boolean; pin?: ProviderPin }): Promise<ProviderState> {
  const files: ProviderState['files'] = {};
  for (const name of Object.keys((opts.pin ?? PINNED).files)) {
    const file = path.join(binDir, name);
    const stat = fs.statSync(file, { throwIfNoEntry: false });
    files[name] = stat?.isFile() ? { size: stat.size, ...(opts.hash && { sha256: await sha256File(file) }) } : null;
  }
  const state: ProviderState = { binDir, files };
  const recordFile = path.join(binDir, RECORD_FILE);
  if (!fs.existsSync(recordFile)) return state;
  try {
    state.record = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as ProviderRecord;
  } catch (e) {
    state.recordError = e instanceof SyntaxError ? 'not valid JSON' : describeFsError(e);
  }
  return state;
}

/**
 * What is wrong with the installed provider for this onnxruntime-node, or undefined when it is the
 * pinned build, complete and (where hashed) intact. Pure: the doctor and the installer share it.
 */
export function providerProblem(state: ProviderState, ortVersion: string, pin: ProviderPin = PINNED): string | undefined {
  const names = Object.keys(pin.files);
  const missing = names.filter((n) => !state.files[n]);
  if (missing.length === names.length) return 'the CUDA execution provider is not installed';
  if (missing.length > 0) return `the CUDA execution provider is incomplete (${missing.join(', ')} missing in ${state.binDir})`;
  const record = state.record;
  if (!record) return `the CUDA provider libraries in ${state.binDir} were not installed by cnnc (${state.recordError ? `${RECORD_FILE} is ${state.recordError}` : `no ${RECORD_FILE}`})`;
  if (record.onnxruntime !== ortVersion) {
    return `the installed CUDA provider is built for ONNX Runtime ${record.onnxruntime}, but onnxruntime-node is ${ortVersion}`;
  }
  if (record.package !== PROVIDER_PACKAGE || record.version !== PROVIDER_VERSION || record.integrity !== pin.integrity) {
    return `the installed CUDA provider is ${record.package}@${record.version}, not the ${PROVIDER_SPEC} this cnnc expects`;
  }
  for (const name of names) {
    const file = state.files[name]!;
    const installed = record.files?.[name];
    const intact = installed !== undefined && installed.sha256 === pin.files[name] && installed.size === file.size &&
      (file.sha256 === undefined || file.sha256 === pin.files[name]);
    if (!intact) {
      return `${path.join(state.binDir, name)} is damaged or was replaced (its ${file.sha256 ? 'checksum' : 'size'} differs from the one installed)`;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Installing

export interface InstallOptions {
  /** The onnxruntime-node to install into. */
  ort: OrtInstall | undefined;
  /** A tarball downloaded beforehand (`npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9`). */
  from?: string;
  /** The checksums to verify against; the pinned ones except in tests of the installer. */
  pin?: ProviderPin;
  platform?: string;
  arch?: string;
  /** The npm command used to download; `npm` on PATH by default. */
  npm?: string;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface InstallResult {
  status: 'installed' | 'already installed';
  binDir: string;
  /** Bytes of the tarball and seconds the download took; absent with --from or when nothing was done. */
  download?: { bytes: number; seconds: number };
}

const FIX_ORT = `npm install onnxruntime-node@${PROVIDER_ORT_VERSION} --save-exact`;

/** Why CUDA cannot be installed for this onnxruntime-node on this platform, if it cannot, and the way out. */
export function installRefusal(ort: OrtInstall | undefined, platform: string, arch: string): { what: string; fix: string } | undefined {
  if (platform !== 'linux' || arch !== 'x64') {
    return { what: `the CUDA provider on the npm registry is built for Linux x64 only, and this is ${platform} ${arch}`, fix: 'use --device cpu' };
  }
  if (!ort) return { what: 'onnxruntime-node is not installed', fix: 'npm install (or npm ci)' };
  if (ort.version !== PROVIDER_ORT_VERSION) {
    return {
      what: `onnxruntime-node ${ort.version} is installed, but the CUDA provider ${PROVIDER_SPEC} is built for ONNX Runtime ` +
        `${PROVIDER_ORT_VERSION} and loads only into that release`,
      fix: FIX_ORT,
    };
  }
  return undefined;
}

/**
 * Installs the pinned provider into the onnxruntime-node: download (or --from), check the tarball's
 * sha512, extract the libraries into a staging folder beside their destination, check each sha256,
 * then rename them into place. The record goes first and comes back last, so a run stopped halfway
 * never looks installed; a run that finds the pinned build already there changes nothing.
 */
export async function installProvider(opts: InstallOptions): Promise<InstallResult> {
  const pin = opts.pin ?? PINNED;
  const log = opts.log ?? (() => {});
  const refusal = installRefusal(opts.ort, opts.platform ?? process.platform, opts.arch ?? process.arch);
  if (refusal) throw new UserError(`${refusal.what}; fix: ${refusal.fix}`);
  const ort = opts.ort!;
  const from = opts.from && path.resolve(opts.from);
  if (from) await verifyTarball(from, pin);
  if (!providerProblem(await readProviderState(ort.binDir, { hash: true, pin }), ort.version, pin)) {
    return { status: 'already installed', binDir: ort.binDir };
  }
  ensureWritableDir(ort.binDir);
  removeStaleStaging(ort.binDir);
  const staging = path.join(ort.binDir, `${STAGING_PREFIX}${process.pid}`);
  fs.mkdirSync(staging);
  try {
    let tarball = from;
    let download: InstallResult['download'];
    if (!tarball) {
      const started = Date.now();
      tarball = await npmPack(staging, opts.npm ?? 'npm', log);
      download = { bytes: fs.statSync(tarball).size, seconds: (Date.now() - started) / 1000 };
      await verifyTarball(tarball, pin);
    }
    log(`extracting ${Object.keys(pin.files).join(', ')}`);
    await extract(tarball, staging, Object.keys(pin.files));
    const record = await checkExtracted(staging, pin);
    commit(staging, ort.binDir, record);
    return { status: 'installed', binDir: ort.binDir, download };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** The tarball's sha512 is the registry's `dist.integrity`; anything else is refused. */
async function verifyTarball(file: string, pin: ProviderPin): Promise<void> {
  let actual: string;
  try {
    actual = `sha512-${await hashFile(file, 'sha512', 'base64')}`;
  } catch (e) {
    throw new UserError(`cannot read the tarball: ${describeFsError(e)}`, file);
  }
  if (actual !== pin.integrity) {
    throw new UserError(`is not ${PROVIDER_SPEC}: its sha512 (${actual}) differs from the pinned ${pin.integrity}; nothing was installed`, file);
  }
}

const STAGING_PREFIX = '.cnnc-cuda-install-';

/** A staging folder of an install that was killed: its process is gone. */
function removeStaleStaging(binDir: string): void {
  for (const entry of fs.readdirSync(binDir)) {
    const pid = entry.startsWith(STAGING_PREFIX) ? Number(entry.slice(STAGING_PREFIX.length)) : NaN;
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) fs.rmSync(path.join(binDir, entry), { recursive: true, force: true });
  }
}

interface Finished { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; error?: NodeJS.ErrnoException }

/** Runs a command to its end, collecting its output (a download must not block Ctrl-C as spawnSync would). */
function runToEnd(command: string, args: string[], cwd?: string): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (error: NodeJS.ErrnoException) => resolve({ status: null, signal: null, stdout, stderr, error }));
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

const OFFLINE_HINT = `on a machine that reaches the registry run \`npm pack ${PROVIDER_SPEC}\`, copy the .tgz here and run \`cnnc cuda install --from FILE.tgz\``;

/**
 * Downloads the tarball with the user's own npm, so that their registry, proxy and certificates
 * apply (`npm config get registry` says where from).
 */
async function npmPack(dest: string, npm: string, log: (line: string) => void): Promise<string> {
  const registry = await runToEnd(npm, ['config', 'get', 'registry']);
  if (registry.error?.code === 'ENOENT') throw new UserError(`npm was not found (\`${npm}\`), and cnnc downloads the CUDA provider with it; ${OFFLINE_HINT}`);
  log(`downloading ${PROVIDER_SPEC} (${PROVIDER_TARBALL_MB} MB) from ${registry.stdout.trim() || 'the npm registry'}`);
  const r = await runToEnd(npm, ['pack', PROVIDER_SPEC, '--pack-destination', dest, '--json', '--ignore-scripts', '--loglevel=error'], dest);
  const tarball = r.status === 0 ? packedFile(r.stdout) : undefined;
  if (!tarball) {
    const why = r.error ? describeFsError(r.error) : npmErrors(r.stderr) ?? `npm exited with ${r.signal ?? `status ${r.status}`}`;
    throw new UserError(`could not download ${PROVIDER_SPEC} with \`npm pack\` (${why}); check \`npm config get registry\` and your proxy settings, or ${OFFLINE_HINT}`);
  }
  return path.join(dest, tarball);
}

/** The file name `npm pack --json` reports. */
function packedFile(stdout: string): string | undefined {
  try {
    const [entry] = JSON.parse(stdout) as { filename?: string }[];
    return entry?.filename;
  } catch {
    return undefined;
  }
}

/** npm's first two `npm error` lines (the code and what failed), without its pointer to a log file. */
function npmErrors(stderr: string): string | undefined {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => /^npm (error|ERR!)/.test(l) && !/complete log|A complete log/i.test(l));
  return lines.slice(0, 2).join(' ').replace(/npm (error|ERR!)\s*/g, '').trim() || undefined;
}

async function extract(tarball: string, staging: string, names: string[]): Promise<void> {
  const members = names.map((n) => `${TARBALL_DIR}/${n}`);
  const r = await runToEnd('tar', ['-xzf', tarball, '-C', staging, '--no-same-owner', ...members]);
  if (r.error?.code === 'ENOENT') throw new UserError('the `tar` command was not found; install it (apt-get install tar) and run `cnnc cuda install` again');
  if (r.status !== 0) {
    throw new UserError(`cannot extract ${names.join(', ')}: ${r.stderr.trim().split('\n')[0] || `tar exited with status ${r.status}`}`, tarball);
  }
}

/** Checks each extracted library against the pin and makes it durable before it is renamed. */
async function checkExtracted(staging: string, pin: ProviderPin): Promise<ProviderRecord> {
  const files: ProviderRecord['files'] = {};
  for (const [name, sha256] of Object.entries(pin.files)) {
    const file = path.join(staging, TARBALL_DIR, name);
    const actual = await sha256File(file);
    if (actual !== sha256) throw new UserError(`${name} in ${PROVIDER_SPEC} has sha256 ${actual}, not the pinned ${sha256}; nothing was installed`);
    const fd = fs.openSync(file, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    files[name] = { sha256, size: fs.statSync(file).size };
  }
  return { package: PROVIDER_PACKAGE, version: PROVIDER_VERSION, onnxruntime: PROVIDER_ORT_VERSION, integrity: pin.integrity, files };
}

/** Renames the checked files into binDir, each atomically; the record last marks the whole as done. */
function commit(staging: string, binDir: string, record: ProviderRecord): void {
  fs.rmSync(path.join(binDir, RECORD_FILE), { force: true });
  for (const name of Object.keys(record.files)) fs.renameSync(path.join(staging, TARBALL_DIR, name), path.join(binDir, name));
  writeFileAtomic(path.join(binDir, RECORD_FILE), JSON.stringify(record, null, 2) + '\n');
}
