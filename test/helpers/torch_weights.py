"""torchvision models with seeded random weights, written the ways cnnc reads PyTorch weights:
the reference for test/weights-torch.test.ts. One process does all the work (importing torch takes
seconds).

Reads a JSON job on stdin: {"dir": DIR, "models": [{"name": "resnet18", "seed": 1, "input": [3, 224, 224],
"kwargs": {}, "files": ["safetensors", "sorted", "folded", "nofold", "plain", "training", "pth"]}]}.
NAME is a torchvision.models constructor or one of REFERENCES below (called with kwargs), for the
example models that torchvision lacks. For each model: parameters from torch.manual_seed(seed), batch-norm
affine values and running statistics randomised too (so that folding them into the convolutions
matters), and every other parameter its initialisation left constant (zero biases, LayerNorm's ones,
ConvNeXt's layer scale of 1e-6) drawn at random, so that a misplaced one changes the logits; then, as asked:
  DIR/NAME.safetensors          the state dict, float32, in state-dict order (num_batches_tracked as I64)
  DIR/NAME.sorted.safetensors   the same tensors sorted by name, as safetensors.torch.save_file writes them
  DIR/NAME.folded.onnx          torch.onnx.export in eval mode (torch 1.13 folds batch norm into the convs)
  DIR/NAME.nofold.onnx          the same with do_constant_folding=False (torch 1.13 still folds batch norm)
  DIR/NAME.plain.onnx           torch.onnx.export with training=TrainingMode.PRESERVE (batch norm kept)
  DIR/NAME.training.onnx        torch.onnx.export with training=TrainingMode.TRAINING (batch norm kept; the
                                export's forward pass in training mode updates the running statistics first)
  DIR/pth/NAME.pth              torch.save of the state dict (a pickle)
  DIR/NAME.input.bin, NAME.logits.bin   a seeded [1, *input] batch and the eval-mode logits (float32)
Writes {"NAME": {"params": trainable count, "buffers": buffer count without num_batches_tracked,
"macs": the multiply-accumulates of its Conv2d, ConvTranspose2d and Linear modules on one sample}} to stdout.
"""
import copy
import json
import os
import struct
import sys
import warnings

import torch
import torchvision

import unet

DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save_safetensors(path, tensors):
    """The format: an 8-byte little-endian header length, a JSON header, the raw little-endian bytes."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def lenet5():
    """examples/zoo/lenet5.cnn's modern simplification of LeNet-5 (not in torchvision)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


REFERENCES = {"lenet5": lenet5, "unet": unet.UNet}


def randomised(name, seed, kwargs):
    torch.manual_seed(seed)
    model = REFERENCES[name](**kwargs) if name in REFERENCES else getattr(torchvision.models, name)(**kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        for p in model.parameters():
            if bool((p == p.flatten()[0]).all()):
                if p.flatten()[0] == 0:
                    p.normal_(0, 0.1)
                else:
                    p.uniform_(0.5, 1.5)
    return model.eval()


def macs_counter(model):
    """Forward hooks adding up each convolution's (transposed too) and Linear's multiply-accumulates per sample into a list's one entry."""
    total = [0]

    def count(m, inputs, output):
        if isinstance(m, torch.nn.ConvTranspose2d):
            # Each input element is multiplied by its group's filters' kernels.
            total[0] += inputs[0].numel() // inputs[0].shape[0] * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            return
        per_output = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] if isinstance(m, torch.nn.Conv2d) else m.in_features
        total[0] += output.numel() // output.shape[0] * per_output

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            m.register_forward_hook(count)
    return total


def export(model, x, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, path, input_names=["x"], output_names=["y"], **kw)


def run(job):
    out = {}
    for spec in job["models"]:
        name, files = spec["name"], spec["files"]
        base = os.path.join(job["dir"], name)
        model = randomised(name, spec["seed"], spec.get("kwargs", {}))
        state = model.state_dict()
        if "safetensors" in files:
            save_safetensors(base + ".safetensors", state)
        if "sorted" in files:
            save_safetensors(base + ".sorted.safetensors", dict(sorted(state.items())))
        if "pth" in files:
            os.makedirs(os.path.join(job["dir"], "pth"), exist_ok=True)
            torch.save(state, os.path.join(job["dir"], "pth", name + ".pth"))
        torch.manual_seed(1000 + spec["seed"])
        x = torch.randn(1, *spec["input"])
        if "folded" in files:
            export(model, x, base + ".folded.onnx")
        if "nofold" in files:
            export(model, x, base + ".nofold.onnx", do_constant_folding=False)
        if "plain" in files:
            export(model, x, base + ".plain.onnx", training=torch.onnx.TrainingMode.PRESERVE)
        if "training" in files:
            # A training-mode export runs the model in training mode, which updates the running statistics: a copy.
            export(copy.deepcopy(model), x, base + ".training.onnx", training=torch.onnx.TrainingMode.TRAINING)
        macs = macs_counter(model)
        with torch.no_grad():
            logits = model(x)
        x.numpy().astype("<f4").tofile(base + ".input.bin")
        logits.numpy().astype("<f4").tofile(base + ".logits.bin")
        out[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "buffers": sum(b.numel() for k, b in model.named_buffers() if not k.endswith("num_batches_tracked")),
            "macs": macs[0],
        }
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    json.dump(run(json.load(sys.stdin)), sys.stdout)
