"""Builds an eager PyTorch nn.Module equal to a checked cnnc model, from bench/model-json.ts's JSON.

Every layer kind and combinator of the language is covered. Windows use the explicit pads the
checker resolved ([top, left, bottom, right]); where PyTorch's symmetric `padding=` cannot express
them (asymmetric pads, `pad=same` with an even kernel, or pool pads over half the window), the input
is padded with F.pad first: zeros for convolution and sum/average pooling, -inf for max pooling.
Average pooling without counting pads (`count_pad=off`) on explicitly padded input divides the window
sum by the window sum of a ones mask, which is what ONNX AveragePool(count_include_pad=0) does.

Parameters are registered under the cnnc names (`conv1.weight`, `bn1.running_mean`): `named_tensors`
gives them in that form, so weights can be handed to cnnc's emitter for an exact comparison.

Usage as a script: /usr/bin/python3 bench/torch_model.py MODEL.json  (prints a summary and checks).
"""
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class CheckError(Exception):
    pass


class Layer(nn.Module):
    """One cnnc layer: `inner` does the work, `pre` pads first when needed."""

    def __init__(self, spec, inner, pre=None, post=None):
        super().__init__()
        self.spec = spec
        self.inner = inner
        self.pre = pre
        self.post = post

    def forward(self, x):
        if self.pre is not None:
            x = self.pre(x)
        x = self.inner(x)
        if self.post is not None:
            x = self.post(x)
        return x

    def params_by_name(self):
        """(cnnc name, tensor) for this layer's parameters and buffers."""
        out = []
        if isinstance(self.inner, nn.PReLU):
            out.append(('weight', self.inner.weight))
        elif isinstance(self.inner, (nn.Conv2d, nn.Linear)):
            out.append(('weight', self.inner.weight))
            if self.inner.bias is not None:
                out.append(('bias', self.inner.bias))
        elif isinstance(self.inner, (nn.BatchNorm1d, nn.BatchNorm2d)):
            out += [('weight', self.inner.weight), ('bias', self.inner.bias),
                    ('running_mean', self.inner.running_mean), ('running_var', self.inner.running_var)]
        return [(self.spec['path'] + '.' + n, t) for n, t in out]


def _pad_fn(pads, value):
    t, l, b, r = pads
    return lambda x: F.pad(x, (l, r, t, b), mode='constant', value=value)


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _symmetric(spec):
    """(padding for PyTorch, needs F.pad first) for a windowed layer."""
    t, l, b, r = spec['pads']
    if t == b and l == r:
        return (t, l), False
    return (0, 0), True


class AvgPoolNoPad(nn.Module):
    """Average over the non-padding elements of each window, on explicitly padded input."""

    def __init__(self, kernel, stride, pads):
        super().__init__()
        self.kernel, self.stride, self.pads = tuple(kernel), tuple(stride), pads

    def forward(self, x):
        t, l, b, r = self.pads
        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
        xp = F.pad(x, (l, r, t, b))
        mp = F.pad(ones, (l, r, t, b))
        s = F.avg_pool2d(xp, self.kernel, self.stride)
        n = F.avg_pool2d(mp, self.kernel, self.stride)
        return s / n


def build_layer(spec):
    kind = spec['layer']
    a = spec['args']
    cin = spec['input'][0]
    spatial = len(spec['input']) == 3
    if kind in ('conv', 'dwconv'):
        if kind == 'dwconv':
            cout, groups = cin * a['multiplier'], cin
        else:
            cout, groups = a['filters'], a['groups']
        padding, explicit = _symmetric(spec)
        conv = nn.Conv2d(cin, cout, tuple(spec['kernel']), stride=tuple(spec['stride']), padding=padding,
                         dilation=tuple(spec['dilation']), groups=groups, bias=bool(a['bias']))
        return Layer(spec, conv, Lambda(_pad_fn(spec['pads'], 0.0)) if explicit else None)
    if kind == 'bn':
        cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        return Layer(spec, cls(cin, eps=a['eps'], momentum=a['momentum']))
    if kind in ('maxpool', 'avgpool', 'sumpool'):
        k, s = tuple(spec['kernel']), tuple(spec['stride'])
        padding, explicit = _symmetric(spec)
        # PyTorch allows symmetric pads of at most half the window.
        if padding[0] > k[0] // 2 or padding[1] > k[1] // 2:
            explicit = True
        if kind == 'maxpool':
            if explicit:
                return Layer(spec, nn.MaxPool2d(k, s), Lambda(_pad_fn(spec['pads'], -math.inf)))
            return Layer(spec, nn.MaxPool2d(k, s, padding))
        if kind == 'avgpool' and not a['count_pad'] and explicit:
            return Layer(spec, AvgPoolNoPad(k, s, spec['pads']))
        count_pad = True if kind == 'sumpool' else bool(a['count_pad'])
        if explicit:
            pool = Layer(spec, nn.AvgPool2d(k, s), Lambda(_pad_fn(spec['pads'], 0.0)))
        else:
            pool = Layer(spec, nn.AvgPool2d(k, s, padding, count_include_pad=count_pad))
        if kind == 'sumpool':
            area = float(k[0] * k[1])
            pool.post = Lambda(lambda x: x * area)
        return pool
    if kind == 'globalavgpool':
        return Layer(spec, nn.AdaptiveAvgPool2d(1))
    if kind == 'globalmaxpool':
        return Layer(spec, nn.AdaptiveMaxPool2d(1))
    if kind == 'flatten':
        return Layer(spec, nn.Flatten(1))
    if kind == 'dense':
        return Layer(spec, nn.Linear(cin, a['units'], bias=bool(a['bias'])))
    if kind == 'dropout':
        return Layer(spec, nn.Dropout(a['p']))
    if kind == 'relu':
        return Layer(spec, nn.ReLU())
    if kind == 'leakyrelu':
        return Layer(spec, nn.LeakyReLU(a['slope']))
    if kind == 'prelu':
        n = cin if a['per_channel'] else 1
        return Layer(spec, nn.PReLU(n, init=0.25))
    if kind == 'elu':
        return Layer(spec, nn.ELU(a['alpha']))
    if kind == 'gelu':
        return Layer(spec, nn.GELU())
    if kind == 'silu':
        return Layer(spec, nn.SiLU())
    if kind == 'sigmoid':
        return Layer(spec, nn.Sigmoid())
    if kind == 'tanh':
        return Layer(spec, nn.Tanh())
    if kind == 'hardswish':
        return Layer(spec, nn.Hardswish())
    if kind == 'softmax':
        return Layer(spec, nn.Softmax(dim=1))
    raise CheckError(f"{spec['path']}: layer kind {kind!r} is not supported by torch_model.py")


class Seq(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.items = nn.ModuleList([build(i) for i in spec['items']])

    def forward(self, x):
        for m in self.items:
            x = m(x)
        return x


class Residual(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.body = build(spec['body'])
        self.shortcut = build(spec['shortcut']) if spec['shortcut'] is not None else None

    def forward(self, x):
        return self.body(x) + (self.shortcut(x) if self.shortcut is not None else x)


class Branches(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.concat = spec['kind'] == 'concat'
        self.branches = nn.ModuleList([build(b) for b in spec['branches']])

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        if self.concat:
            return torch.cat(outs, dim=1)
        y = outs[0]
        for o in outs[1:]:
            y = y + o
        return y


class Gate(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.body = build(spec['body'])

    def forward(self, x):
        return x * self.body(x)


def build(spec):
    kind = spec['kind']
    if kind == 'layer':
        return build_layer(spec)
    if kind == 'seq':
        return Seq(spec)
    if kind == 'residual':
        return Residual(spec)
    if kind in ('concat', 'add'):
        return Branches(spec)
    if kind == 'gate':
        return Gate(spec)
    raise CheckError(f'unknown node kind {kind!r}')


class CnncModel(nn.Module):
    def __init__(self, model_json):
        super().__init__()
        self.desc = model_json
        self.root = build(model_json['root'])

    def forward(self, x):
        return self.root(x)

    def layers(self):
        return [m for m in self.modules() if isinstance(m, Layer)]

    def named_tensors(self):
        """cnnc parameter name -> tensor (parameters and batch-norm buffers)."""
        out = {}
        for layer in self.layers():
            for name, t in layer.params_by_name():
                out[name] = t
        return out


def verify(model, batch=2):
    """Fails loudly unless parameter counts and every node's output shape match the JSON.

    Returns the number of trainable parameters (sum of p.numel() over parameters())."""
    desc = model.desc
    total = sum(p.numel() for p in model.parameters())
    if total != desc['trainable']:
        raise CheckError(f"{desc['name']}: PyTorch has {total:,} parameters, cnnc counts {desc['trainable']:,}")
    for layer in model.layers():
        n = sum(p.numel() for p in layer.parameters())
        if n != layer.spec['params']:
            raise CheckError(f"{layer.spec['path']}: PyTorch has {n} parameters, cnnc counts {layer.spec['params']}")
    mismatches = []

    def hook(mod, _inp, out):
        want = [batch] + list(mod.spec['output'])
        if list(out.shape) != want:
            mismatches.append(f"{mod.spec['path'] or 'model'} ({mod.spec.get('layer', mod.spec['kind'])}): "
                              f"PyTorch gives {list(out.shape)}, cnnc {want}")

    handles = [m.register_forward_hook(hook) for m in model.modules() if hasattr(m, 'spec')]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            y = model(torch.randn([batch] + list(desc['input'])))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if mismatches:
        raise CheckError(f"{desc['name']}: shape mismatch at\n  " + '\n  '.join(mismatches[:10]))
    if list(y.shape) != [batch] + list(desc['output']):
        raise CheckError(f"{desc['name']}: output {list(y.shape)}, cnnc {[batch] + desc['output']}")
    return total


def randomise(model, seed=0):
    """Random weights and batch-norm statistics (so that an equivalence check tests every term)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.named_tensors().items():
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith('running_mean') or name.endswith('.bias'):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif isinstance(t, nn.Parameter) and t.dim() == 1 and name.endswith('weight'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)  # bn scale / prelu slope
            else:
                fan_in = max(1, t[0].numel())
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan_in))


if __name__ == '__main__':
    with open(sys.argv[1]) as f:
        desc = json.load(f)
    m = CnncModel(desc)
    n = verify(m)
    print(f"{desc['name']}: {n:,} parameters, output {desc['output']}: shapes and counts match")
