"""The PyTorch side of the GPU benchmark (bench/bench-gpu.ts): a long-lived process that takes one
JSON command per line on stdin and answers one JSON line on stdout, like bench/torch_bench.py, whose
model loading it shares (the model.py that `cnnc export --torch` writes). Eager mode, float32, and
TF32 off for matrix products and convolutions; cuDNN picks its algorithms by benchmarking
(cudnn.benchmark), as ONNX Runtime's CUDA provider searches for its own.

Commands ({"cmd": ..., ...}):
  info                          versions, the GPU, the precision settings
  load  id dir model batch device [train]
                                build the model on `device` (cuda or cpu) with a fixed random batch on
                                that device and a copy in host memory; train = {"lr", "momentum"}:
                                SGD with momentum and cross-entropy
  infer id iters host           `iters` timed forward passes (eval, inference_mode), each waited for;
                                host=true copies the input from host memory and the output back, as
                                cnnc's onnxruntime-node calls do
  train id iters                `iters` timed training steps (forward, loss, backward, step, loss.item())
  memory id                     peak memory PyTorch allocated and reserved on the GPU since load
  drop  id                      forget a model (and release its GPU memory)
  quit
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import CheckError, model_py, serve  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True

models = {}


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def info():
    cuda = torch.cuda.is_available()
    return {
        'python': sys.version.split()[0],
        'torch': torch.__version__,
        'cuda': torch.version.cuda,
        'cudnn': torch.backends.cudnn.version() if cuda else None,
        'gpu': torch.cuda.get_device_name(0) if cuda else None,
        'allow_tf32_matmul': torch.backends.cuda.matmul.allow_tf32,
        'allow_tf32_cudnn': torch.backends.cudnn.allow_tf32,
        'cudnn_benchmark': torch.backends.cudnn.benchmark,
        'nvidia_tf32_override': os.environ.get('NVIDIA_TF32_OVERRIDE'),
    }


def load(msg):
    device = msg['device']
    if device == 'cuda' and not torch.cuda.is_available():
        raise CheckError('PyTorch sees no CUDA device (torch.cuda.is_available() is False)')
    torch.manual_seed(msg.get('seed', 0))
    model = model_py(msg['dir']).build_model(msg['model']).to(device)
    batch = msg['batch']
    host = torch.randn((batch,) + model.INPUT)
    if device == 'cuda':
        host = host.pin_memory()
        torch.cuda.reset_peak_memory_stats()
    entry = {'model': model, 'host': host, 'x': host.to(device), 'device': device}
    train = msg.get('train')
    if train:
        entry['y'] = torch.randint(0, model.OUTPUT[0], (batch,), device=device)
        entry['opt'] = torch.optim.SGD(model.parameters(), lr=train['lr'], momentum=train['momentum'])
        model.train()
    else:
        model.eval()
    models[msg['id']] = entry
    return {'params': sum(p.numel() for p in model.parameters())}


def infer(msg):
    e = models[msg['id']]
    model, device = e['model'], e['device']
    model.eval()
    times = []
    with torch.inference_mode():
        for _ in range(msg['iters']):
            t = time.perf_counter()
            if msg.get('host'):
                model(e['host'].to(device)).cpu()
            else:
                model(e['x'])
                sync(device)
            times.append(time.perf_counter() - t)
    return {'times': times}


def train(msg):
    e = models[msg['id']]
    model, x, y, opt = e['model'], e['x'], e['y'], e['opt']
    model.train()
    times, loss_value = [], None
    for _ in range(msg['iters']):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        # cnnc folds a final softmax into the cross-entropy, which then takes the values before it.
        loss = F.cross_entropy(model(x, logits=model.PROBABILITIES == 'softmax'), y)
        loss.backward()
        opt.step()
        loss_value = loss.item()  # waits for the step, as cnnc's runner returns the loss too
        times.append(time.perf_counter() - t)
    return {'times': times, 'loss': loss_value}


def memory(msg):
    if models[msg['id']]['device'] != 'cuda':
        return {'allocated': None, 'reserved': None}
    return {'allocated': torch.cuda.max_memory_allocated(), 'reserved': torch.cuda.max_memory_reserved()}


def drop(msg):
    models.pop(msg['id'], None)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {}


def main():
    handlers = {'info': lambda m: info(), 'load': load, 'infer': infer, 'train': train, 'memory': memory, 'drop': drop}
    serve(handlers)


if __name__ == '__main__':
    main()
