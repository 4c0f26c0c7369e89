"""Joins and unpacks what bench/gpu/pack.ts wrote into gpu-pack/load-*/, on a machine that has
Python 3 but maybe neither Node nor xz: each part is checked against manifest.json's sha256, the
parts of each stream are joined and checked again, then the base tar (Node and the app) is
extracted and the CUDA provider library decompressed into the app's onnxruntime-node. A folder
already unpacked from the same manifest is left as it is.

Usage: python3 bench/gpu/unpack.py PACK_DIR [RUN_DIR]   (RUN_DIR: PACK_DIR/run); prints RUN_DIR.
"""
import glob
import hashlib
import json
import lzma
import os
import shutil
import sys
import tarfile


def fail(message):
    sys.stderr.write(f'unpack: {message}\n')
    sys.exit(1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(pack):
    found = sorted(glob.glob(os.path.join(pack, 'load-*', 'manifest.json')))
    if not found:
        fail(f'no {pack}/load-*/manifest.json: run `npm run bench:gpu:pack` where Node is, and bring every load folder here')
    with open(found[0], 'rb') as f:
        text = f.read()
    return json.loads(text), hashlib.sha256(text).hexdigest()


def join_stream(pack, stream, dest):
    """The stream's parts, checked one by one, joined into dest and checked whole."""
    missing = [p for p in stream['parts'] if not os.path.isfile(os.path.join(pack, p['load'], p['name']))]
    if missing:
        loads = sorted({p['load'] for p in missing})
        fail(f"{len(missing)} part(s) of {stream['name']} missing: {', '.join(p['name'] for p in missing)} (bring {', '.join(loads)})")
    with open(dest, 'wb') as out:
        for p in stream['parts']:
            path = os.path.join(pack, p['load'], p['name'])
            if sha256(path) != p['sha256']:
                fail(f'{path} is damaged: its sha256 differs from the manifest (copy it again)')
            with open(path, 'rb') as f:
                shutil.copyfileobj(f, out, 1 << 20)
    if sha256(dest) != stream['sha256']:
        fail(f"the joined {stream['name']} differs from the one packed (sha256)")


def unpack(pack, run):
    manifest, key = read_manifest(pack)
    marker = os.path.join(run, '.unpacked')
    if os.path.isfile(marker) and open(marker).read().strip() == key:
        return run
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    joined = os.path.join(run, '.joined')
    for stream in manifest['streams']:
        join_stream(pack, stream, joined)
        if stream['what'] == 'tar.xz':
            with tarfile.open(joined, 'r:xz') as tar:
                tar.extractall(run)
        else:
            target = os.path.join(run, stream['into'])
            with lzma.open(joined) as src, open(target, 'wb') as out:
                shutil.copyfileobj(src, out, 1 << 20)
        os.remove(joined)
    os.chmod(os.path.join(run, 'node'), 0o755)
    with open(marker, 'w') as f:
        f.write(key + '\n')
    return run


if __name__ == '__main__':
    if len(sys.argv) not in (2, 3):
        fail('usage: python3 bench/gpu/unpack.py PACK_DIR [RUN_DIR]')
    pack_dir = sys.argv[1]
    print(unpack(pack_dir, sys.argv[2] if len(sys.argv) == 3 else os.path.join(pack_dir, 'run')))
