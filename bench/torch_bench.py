"""The PyTorch side of the benchmarks: a long-lived process that takes one JSON command per line on
stdin and answers one JSON line on stdout, so that the TypeScript harness can interleave its own
runs with PyTorch's (A B A B ...) under the same machine conditions.

Commands ({"cmd": ..., ...}):
  info                                 versions, threads, BLAS library in use, torch.__config__.show()
  load   id dir model batch [train] [seed]
                                       build `model` from the model.py that cnnc export --torch wrote in
                                       `dir` (bench/models.ts), check its output shape (fails loudly),
                                       make a fixed random batch; train = {"optimizer", "loss"} from
                                       cnnc's TrainConfig
  infer  id iters                      `iters` timed forward passes (eval, inference_mode); seconds each
  train  id iters                      `iters` timed training steps (forward, cross-entropy, backward, step)
  export id path seed                  random weights and bn statistics, written with model.py's
                                       save_checkpoint to `path`, the input and PyTorch's eval output
                                       with them as the tensors __input__ and __output__
  rss                                  peak and current resident memory of this process (bytes)
  drop   id                            forget a model
  quit

Run by bench/bench.ts and bench/bench-train.ts with /usr/bin/python3 (Debian's python3-torch).
"""
import importlib.util
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

THREADS = int(os.environ.get('BENCH_THREADS', '2'))
torch.set_num_threads(THREADS)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass

models = {}
modules = {}


class CheckError(Exception):
    pass


def model_py(folder):
    """The model.py of an exported folder, imported once under a name of its own."""
    if folder not in modules:
        spec = importlib.util.spec_from_file_location(f'exported_{len(modules)}', os.path.join(folder, 'model.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[folder] = module
    return modules[folder]


def named_tensors(model):
    """Parameters and buffers under cnnc's names (PyTorch's batch counters are not cnnc's)."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}


def randomise(model, seed=0):
    """Random weights and batch-norm statistics (so that an equivalence check tests every term)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in named_tensors(model).items():
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith('running_mean') or name.endswith('.bias'):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)  # bn scale, prelu slope
            else:
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(max(1, t[0].numel())))


def blas_libraries():
    """Shared libraries mapped into this process that look like BLAS/LAPACK/oneDNN."""
    torch.mm(torch.randn(64, 64), torch.randn(64, 64))  # make sure BLAS is loaded
    found = set()
    with open('/proc/self/maps') as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ''
            base = os.path.basename(path)
            if any(k in base for k in ('blas', 'lapack', 'mkl', 'dnnl', 'gomp', 'omp')):
                found.add(os.path.realpath(path))
    return sorted(found)


def info():
    libs = blas_libraries()
    return {
        'python': sys.version.split()[0],
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'interop_threads': torch.get_num_interop_threads(),
        'openblas': any('openblas' in p for p in libs),
        'blas_libraries': libs,
        'mkldnn': torch.backends.mkldnn.is_available(),
        'config': torch.__config__.show(),
    }


def rss():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    current = 0
    with open('/proc/self/statm') as f:
        current = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    return {'peak': peak, 'current': current}


def load(msg):
    torch.manual_seed(msg.get('seed', 0))
    model = model_py(msg['dir']).build_model(msg['model'])
    params = sum(p.numel() for p in model.parameters())
    batch = msg['batch']
    x = torch.randn((batch,) + model.INPUT)
    model.eval()
    with torch.no_grad():
        shape = tuple(model(x).shape)
    if shape != (batch,) + model.OUTPUT:
        raise CheckError(f'{model.NAME}: PyTorch gives {shape}, cnnc {(batch,) + model.OUTPUT}')
    entry = {'model': model, 'x': x, 'batch': batch, 'dir': msg['dir']}
    train = msg.get('train')
    if train:
        classes = model.OUTPUT[0]
        entry['y'] = torch.randint(0, classes, (batch,))
        o = train['optimizer']  # cnnc's TrainConfig.optimizer
        if o['kind'] == 'sgd':
            entry['opt'] = torch.optim.SGD(model.parameters(), lr=o['lr'], momentum=o['momentum'],
                                           nesterov=o['nesterov'], weight_decay=o['weight_decay'])
        elif o['kind'] in ('adam', 'adamw'):
            cls = torch.optim.Adam if o['kind'] == 'adam' else torch.optim.AdamW
            entry['opt'] = cls(model.parameters(), lr=o['lr'], betas=(o['beta1'], o['beta2']), eps=o['eps'],
                               weight_decay=o['weight_decay'])
        else:
            raise CheckError(f"optimizer {o['kind']!r} not supported here")
        loss = train.get('loss', {'kind': 'cross_entropy', 'smoothing': 0})
        if loss['kind'] != 'cross_entropy':
            raise CheckError('only cross_entropy is benchmarked')
        entry['smoothing'] = loss['smoothing']
        model.train()
    else:
        model.eval()
    models[msg['id']] = entry
    return {'params': params}


def infer(msg):
    e = models[msg['id']]
    model, x = e['model'], e['x']
    model.eval()
    times = []
    with torch.inference_mode():
        for _ in range(msg['iters']):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return {'times': times}


def train(msg):
    e = models[msg['id']]
    model, x, y, opt = e['model'], e['x'], e['y'], e['opt']
    model.train()
    times = []
    loss_value = None
    for _ in range(msg['iters']):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        # cnnc folds a final softmax into the cross-entropy, which then takes the values before it.
        loss = F.cross_entropy(model(x, logits=model.PROBABILITIES == 'softmax'), y, label_smoothing=e['smoothing'])
        loss.backward()
        opt.step()
        loss_value = loss.item()  # synchronises, as the cnnc runner returns the loss too
        times.append(time.perf_counter() - t)
    return {'times': times, 'loss': loss_value}


def export(msg):
    e = models[msg['id']]
    model = e['model']
    randomise(model, msg.get('seed', 0))
    model.eval()
    x = e['x']
    with torch.no_grad():
        y = model(x)
    model_py(e['dir']).save_checkpoint(model, msg['path'], extra={'__input__': x, '__output__': y})
    return {'tensors': len(named_tensors(model)) + 2}


def serve(handlers):
    """Answers one JSON command a line on stdin with one JSON line on stdout, until `quit`."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        if msg['cmd'] == 'quit':
            break
        try:
            out = {'ok': True, **(handlers[msg['cmd']](msg) or {})}
        except CheckError as e:
            out = {'ok': False, 'error': str(e), 'check': True}
        except Exception as e:  # noqa: BLE001 - reported to the harness, which fails loudly
            out = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()


def main():
    handlers = {
        'info': lambda m: info(), 'rss': lambda m: rss(), 'load': load, 'infer': infer, 'train': train,
        'export': export, 'drop': lambda m: models.pop(m['id'], None) and {},
    }
    serve(handlers)


if __name__ == '__main__':
    main()
