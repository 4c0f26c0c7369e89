"""U-Net (Ronneberger, Fischer and Brox 2015) as a plain PyTorch module, written from the paper:
the reference for examples/segmentation/unet.cnn (test/weights-torch.test.ts). Four levels down,
each two 3x3 convolutions then a 2x2 max pool, doubling the channels from `width`; a bottom level
of two convolutions; four levels up, each a 2x2 stride-2 transposed convolution halving the
channels, the contracting path's features of that size concatenated before it (the skip), and two
3x3 convolutions; a 1x1 convolution to the classes. As examples/segmentation/unet.cnn explains:
padded convolutions and batch norm after each (no convolution bias), unlike the paper.

The modules are declared in the order the forward pass runs them, as state dicts list them.
"""
import torch
from torch import nn


def double_conv(c_in, c_out):
    """Two 3x3 convolutions, each followed by batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Up(nn.Module):
    """The up-convolution halving the channels, then the skip concatenated and two convolutions."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.upconv = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.conv = double_conv(2 * c_out, c_out)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.upconv(x)], dim=1))


class UNet(nn.Module):
    def __init__(self, in_channels=1, classes=2, width=64):
        super().__init__()
        widths = [width * 2 ** i for i in range(5)]
        self.down = nn.ModuleList([double_conv(c_in, c_out) for c_in, c_out in zip([in_channels] + widths[:-1], widths)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([Up(c_in, c_out) for c_in, c_out in zip(widths[:0:-1], widths[-2::-1])])
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        skips = []
        for i, level in enumerate(self.down):
            x = level(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()  # the bottom level's output is not a skip
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)
