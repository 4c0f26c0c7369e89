/**
 * The fixed parts of model.py: its imports, what every model class shares (freezing, and frozen
 * batch norms kept in eval mode, as cnnc trains them), cnnc checkpoint reading and writing (the
 * format of src/runtime/checkpoint.ts), and `python model.py`.
 */

export const IMPORTS = `import hashlib
import json
import math
import os
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
`;

export const MODEL_BASE = `def frozen(module):
    """Freezes a module, as cnnc's frozen { } does: no gradients for its parameters, and its batch
    norms normalise with their running statistics and keep them, in training too."""
    module.requires_grad_(False)
    return module


class CnncModel(nn.Module):
    """What every model class shares. A batch norm whose weight does not require a gradient is
    frozen (see frozen): train() leaves it in eval mode, which survives SyncBatchNorm conversion."""

    def train(self, mode=True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and not m.weight.requires_grad:
                m.train(False)
        return self

    def freeze(self, patterns):
        """Freezes what a train section's freeze: patterns name, as cnnc matches them: a pattern (*
        for any run of characters, dots included) names a module by its path, and freezes all in it."""
        matchers = [re.compile('.*'.join(re.escape(part) for part in p.split('*'))) for p in patterns]
        for name, m in self.named_modules():
            if name and any(r.fullmatch(name) for r in matchers):
                frozen(m)
        return self
`;

export const CHECKPOINTS = `CHECKPOINT_MAGIC = b'CNNCKPT\\0'
CHECKPOINT_VERSION = 1
_ALIGN = 64


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model."""


def _aligned(n):
    return -(-n // _ALIGN) * _ALIGN


def _little_endian():
    if sys.byteorder != 'little':
        raise CheckpointError('cnnc checkpoints are little-endian; this machine is not')


def read_checkpoint(path):
    """A cnnc checkpoint as a dict: model, sourceHash, meta and tensors (name -> float32 tensor)."""
    _little_endian()
    with open(path, 'rb') as f:
        data = f.read()

    def bad(why):
        raise CheckpointError(f'{path}: not a valid cnnc checkpoint: {why}')

    if len(data) < 16 or data[:8] != CHECKPOINT_MAGIC:
        bad(f'only {len(data)} bytes long' if len(data) < 16 else 'it does not start with the CNNCKPT signature')
    version = int.from_bytes(data[8:12], 'little')
    length = int.from_bytes(data[12:16], 'little')
    if version != CHECKPOINT_VERSION:
        bad(f'format version {version}; this model.py reads version {CHECKPOINT_VERSION}')
    if 16 + length > len(data):
        bad(f'truncated: the header needs {16 + length} bytes, the file has {len(data)}')
    try:
        header = json.loads(data[16:16 + length].decode('utf-8'))
        start, size = _aligned(16 + length), int(header['dataBytes'])
        entries = header['tensors']
    except (ValueError, KeyError, TypeError) as e:
        bad(f'its header is not a checkpoint header ({e})')
    if start + size > len(data):
        bad(f'truncated: the data needs {start + size} bytes, the file has {len(data)}')
    body = memoryview(data)[start:start + size]
    if hashlib.sha256(body).hexdigest() != header.get('dataSha256'):
        bad('its data does not match the checksum in its header (the file is corrupt)')
    tensors = {}
    for t in entries:
        count = math.prod(t['dims'])
        if t.get('dtype') != 'float32' or t['length'] != 4 * count or t['offset'] + t['length'] > size:
            bad(f"tensor {t['name']} has a dtype, offset or length that does not fit its data")
        chunk = bytearray(body[t['offset']:t['offset'] + t['length']])
        tensors[t['name']] = torch.frombuffer(chunk, dtype=torch.float32).reshape(t['dims']) if count else torch.zeros(t['dims'])
    return {'model': header.get('model'), 'sourceHash': header.get('sourceHash'), 'meta': header.get('meta') or {}, 'tensors': tensors}


def _model_tensors(model):
    """The model's parameters and buffers under cnnc's names (PyTorch's batch counters are not cnnc's)."""
    return {k: v for k, v in model.state_dict(keep_vars=True).items() if not k.endswith('num_batches_tracked')}


def load_checkpoint(model, path, extra=None):
    """Copies every parameter and buffer of \`model\` from a cnnc checkpoint (cnnc train's best.ckpt,
    compile --train's init.ckpt, save_checkpoint's files); returns the checkpoint's meta. Optimizer
    state (optim.* tensors) is not the model's: it goes into the dict \`extra\` when one is given."""
    ckpt = read_checkpoint(path)
    if ckpt['model'] != model.NAME:
        raise CheckpointError(f"{path}: a checkpoint of model {ckpt['model']}, not {model.NAME}")
    tensors = ckpt['tensors']
    own = _model_tensors(model)
    for name, t in own.items():
        if name not in tensors:
            raise CheckpointError(f'{path}: no tensor {name} (shape {tuple(t.shape)}), which {model.NAME} needs')
        if tuple(tensors[name].shape) != tuple(t.shape):
            raise CheckpointError(f'{path}: tensor {name} has shape {tuple(tensors[name].shape)}, {model.NAME} needs {tuple(t.shape)}')
    for name in tensors:
        if name not in own and not name.startswith('optim.'):
            raise CheckpointError(f'{path}: tensor {name} is not a parameter or buffer of {model.NAME}')
    with torch.no_grad():
        for name, t in own.items():
            t.copy_(tensors[name])
    if extra is not None:
        extra.update({k: v for k, v in tensors.items() if k.startswith('optim.')})
    return ckpt['meta']


def save_checkpoint(model, path, meta=None, extra=None):
    """Writes the model's parameters and buffers (and the float32 tensors of \`extra\`, e.g. optimizer
    state under optim.* names) as a cnnc checkpoint that cnnc predict --weights, compile --weights and
    train --init read. Atomic: a temporary file beside it, fsync'd, then renamed over \`path\`."""
    _little_endian()
    tensors = dict(_model_tensors(model))
    for name, t in (extra or {}).items():
        if name in tensors:
            raise CheckpointError(f'{path}: extra tensor {name} has the name of a model tensor')
        tensors[name] = t
    entries, chunks, offset = [], [], 0
    for name, t in tensors.items():
        t = t.detach().to('cpu', torch.float32).contiguous().reshape(-1)
        chunk = bytearray(_aligned(4 * t.numel()))
        if t.numel():
            torch.frombuffer(chunk, dtype=torch.float32, count=t.numel()).copy_(t)
        entries.append({'name': name, 'dims': list(tensors[name].shape), 'dtype': 'float32', 'offset': offset, 'length': 4 * t.numel()})
        chunks.append(chunk)
        offset += len(chunk)
    digest = hashlib.sha256()
    for c in chunks:
        digest.update(c)
    header = {'format': 'cnnc-checkpoint', 'version': CHECKPOINT_VERSION, 'model': model.NAME, 'sourceHash': model.SOURCE_HASH,
              'meta': meta or {}, 'dataBytes': offset, 'dataSha256': digest.hexdigest(), 'tensors': entries}
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    preamble = bytearray(_aligned(16 + len(text)))
    preamble[0:16] = CHECKPOINT_MAGIC + CHECKPOINT_VERSION.to_bytes(4, 'little') + len(text).to_bytes(4, 'little')
    preamble[16:16 + len(text)] = text
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            for c in [preamble, *chunks]:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
`;

export const MAIN = `def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description='Build a model of this file and print its size (and load a cnnc checkpoint).')
    parser.add_argument('--model', default=DEFAULT_MODEL, choices=sorted(MODELS))
    parser.add_argument('--checkpoint', help='a cnnc checkpoint to load (.ckpt)')
    args = parser.parse_args(argv)
    model = build_model(args.model)
    loaded = ''
    if args.checkpoint:
        try:
            load_checkpoint(model, args.checkpoint)
        except (CheckpointError, OSError) as e:
            sys.exit(f'model.py: error: {e}')
        loaded = f', weights from {args.checkpoint}'
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith('num_batches_tracked'))
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros((1,) + model.INPUT))
    shape = 'x'.join(map(str, model.INPUT))
    print(f'{model.NAME}: input {shape} -> output {"x".join(map(str, out.shape[1:]))}; '
          f'{params:,} parameters ({trainable:,} trainable), {buffers:,} buffer values{loaded}')


if __name__ == '__main__':
    main()
`;
