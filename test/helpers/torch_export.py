"""Runs exported model.py files for test/export-torch.test.ts: one JSON command per stdin line, one
JSON reply per stdout line ({"ok": true, ...} or {"ok": false, "error": ...}), so that torch is
imported once for the whole test file.

Commands (paths are files the test reads or writes; tensors go to files as raw float32):
  parity:  build `model` of the model.py in `dir`, draw random parameters and batch-norm statistics
           (seeded), save them with save_checkpoint to `ckpt`, run the eval forward on a seeded random
           batch; write it to `input` and the outputs to `output`. Also loads `ckpt` into a fresh model
           (its outputs must be the same) and, for a model ending in softmax/sigmoid, checks that
           forward(x, logits=True) gives the values before it.
  forward: build `model`, load_checkpoint(`ckpt`), run the eval forward on `input`, write `output`.
  train-forward: the same with freeze(`patterns`) in train mode; save_checkpoint to `out` (the
           batch norms' updated running statistics).
  load:    build `model` and load_checkpoint(`ckpt`); the reply carries the error, if any.
  frozen:  build `model`, freeze(`patterns`), train(); report which parameters require a gradient
           and which batch norms are in training mode.
"""
import importlib.util
import json
import math
import sys

import torch

_modules = {}


def model_py(folder):
    """The model.py of an exported folder, imported once under a name of its own."""
    if folder not in _modules:
        spec = importlib.util.spec_from_file_location(f'exported_{len(_modules)}', f'{folder}/model.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[folder] = module
    return _modules[folder]


def tensors(model):
    return {k: v for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}


def randomise(model, seed):
    """Random values for every term: positive variances, scales near 1, fan-in-scaled weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in tensors(model).items():
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith('running_mean') or name.endswith('.bias'):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)  # bn scale, prelu slope
            else:
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(max(1, t[0].numel())))


def write(path, t):
    t = t.detach().contiguous().float().reshape(-1)
    buf = bytearray(4 * t.numel())
    torch.frombuffer(buf, dtype=torch.float32).copy_(t)
    with open(path, 'wb') as f:
        f.write(buf)


def read(path, shape):
    with open(path, 'rb') as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(shape)


def parity(m, cmd):
    model = m.build_model(cmd['model'])
    randomise(model, cmd['seed'])
    m.save_checkpoint(model, cmd['ckpt'], meta={'test': 'parity'})
    model.eval()
    x = torch.randn((cmd['batch'],) + model.INPUT, generator=torch.Generator().manual_seed(cmd['seed'] + 1))
    with torch.no_grad():
        y = model(x)
        logits = model(x, logits=True)
    reloaded = m.build_model(cmd['model'])
    meta = m.load_checkpoint(reloaded, cmd['ckpt'])
    reloaded.eval()
    with torch.no_grad():
        again = reloaded(x)
    write(cmd['input'], x)
    write(cmd['output'], y)
    reply = {'keys': list(tensors(model)), 'shape': list(y.shape), 'reloadDiff': (again - y).abs().max().item(), 'meta': meta,
             'probabilities': model.PROBABILITIES, 'input': list(model.INPUT), 'output': list(model.OUTPUT)}
    if model.PROBABILITIES:
        fold = torch.softmax(logits, 1) if model.PROBABILITIES == 'softmax' else torch.sigmoid(logits)
        reply['logitsDiff'] = (fold - y).abs().max().item()
    else:
        reply['logitsDiff'] = (logits - y).abs().max().item()
    return reply


def forward(m, cmd):
    model = m.build_model(cmd['model'])
    m.load_checkpoint(model, cmd['ckpt'])
    model.eval()
    with torch.no_grad():
        write(cmd['output'], model(read(cmd['input'], [cmd['batch'], *model.INPUT])))
    return {}


def train_forward(m, cmd):
    model = m.build_model(cmd['model'])
    m.load_checkpoint(model, cmd['ckpt'])
    model.freeze(cmd['patterns']).train()
    with torch.no_grad():
        model(read(cmd['input'], [cmd['batch'], *model.INPUT]))
    m.save_checkpoint(model, cmd['out'])
    return {}


def train_output(m, cmd):
    """The forward in train mode, with PyTorch's own seeded draws for the random layers."""
    model = m.build_model(cmd['model'])
    model.train()
    torch.manual_seed(cmd['seed'])
    with torch.no_grad():
        write(cmd['output'], model(read(cmd['input'], [cmd['batch'], *model.INPUT])))
    return {}


def load(m, cmd):
    model = m.build_model(cmd['model'])
    try:
        m.load_checkpoint(model, cmd['ckpt'])
    except m.CheckpointError as e:
        return {'error': str(e)}
    return {'error': None}


def frozen(m, cmd):
    model = m.build_model(cmd['model'])
    model.freeze(cmd['patterns']).train()
    return {
        'frozen': [n for n, p in model.named_parameters() if not p.requires_grad],
        'training': [n for n, b in model.named_modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm) and b.training],
    }


COMMANDS = {'parity': parity, 'forward': forward, 'train-forward': train_forward, 'train-output': train_output, 'load': load, 'frozen': frozen}

for line in sys.stdin:
    cmd = json.loads(line)
    try:
        reply = {'ok': True, **COMMANDS[cmd['cmd']](model_py(cmd['dir']), cmd)}
    except Exception as e:  # reported to the test, which fails with it
        reply = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
    print(json.dumps(reply), flush=True)
