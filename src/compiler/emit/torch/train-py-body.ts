/**
 * The part of train.py that is the same for every model (train-py.ts puts the settings above it).
 * Python, kept as text; test/export-train.test.ts runs it against cnnc's training graphs.
 */

const imports = String.raw`import argparse
import gzip
import json
import math
import os
import re
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from model import CheckpointError, build_model, load_checkpoint, save_checkpoint

try:  # only image folders need Pillow
    from PIL import Image, ImageOps
except ImportError:
    Image = ImageOps = None
`;

const commandLine = String.raw`

class UserError(Exception):
    """A problem with the command line, the data or a checkpoint: one line, no traceback."""


# ---------------------------------------------------------------------------------------------
# The command line: every setting above is a flag

def on_off(text):
    value = text.lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def number(low, high=None, low_open=False, high_open=False, kind=float):
    """An argparse type: a number (kind float or int) in [low, high], the ends open where asked."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        below = value < low or (low_open and value == low)
        above = high is not None and (value > high or (high_open and value == high))
        if not math.isfinite(value) or below or above:
            interval = f"{'(' if low_open else '['}{low}, {'inf' if high is None else high}{')' if high_open or high is None else ']'}"
            raise argparse.ArgumentTypeError(f"{text} is outside {interval}")
        return value
    return parse

`;

const parseArgs = String.raw`

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=f"Trains {MODEL} (model.py) with the train {{ }} settings of {SOURCE_FILE}, in one process "
        "or one per GPU under torchrun (DistributedDataParallel).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True,
                   help="IDX files (train-/t10k-...-ubyte[.gz]), class folders of PNG/JPEG images, or for a dense model image/mask "
                   "pairs (images/NAME.png with masks/NAME.png); folders optionally under train/ and test/")
    p.add_argument("--out", default=os.path.join("runs", MODEL), help="folder for last.ckpt, best.ckpt and train.jsonl")
    add_settings(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when available")
    p.add_argument("--sync-bn", action="store_true", help="batch statistics over all processes (SyncBatchNorm, CUDA only)")
    p.add_argument("--workers", type=number(0, kind=int), default=0, help="DataLoader worker processes (the data are in memory)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.ckpt")
    p.add_argument("--init", metavar="CKPT", help="start from the weights of a cnnc checkpoint (cnnc train, cnnc compile --train, this script)")
    p.add_argument("--val-split", type=number(0, 1, high_open=True), default=0.1,
                   help="class folders without train/ and test/: the part of each class held out for validation")
    p.add_argument("--resize", action="store_true", help="stretch and convert images whose size or channels differ from the model's input")
    p.add_argument("--limit-train", type=number(1, kind=int), help="use only the first N training samples")
    p.add_argument("--limit-test", type=number(1, kind=int), help="use only the first N held-out samples")
    return p.parse_args(argv)
`;

const data = String.raw`

# ---------------------------------------------------------------------------------------------
# Data: IDX files or class folders, as cnnc finds them, held in memory as uint8 [N, C, H, W] and
# int64 labels (each process holds all of it)

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_PREFIX = {"train": "train", "test": "t10k"}


def idx_file(folder, split, kind, dims):
    """DIR/train-images-idx3-ubyte and the other spellings cnnc accepts, gzipped or not."""
    for infix in (f"-{kind}-idx{dims}-ubyte", f"-{kind}.idx{dims}-ubyte"):
        for suffix in ("", ".gz"):
            path = os.path.join(folder, IDX_PREFIX[split] + infix + suffix)
            if os.path.exists(path):
                return path
    return None


def read_idx(path):
    """An IDX file of unsigned bytes as a uint8 tensor; gzip is told by the content, not the name."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise UserError(f"{path}: corrupt gzip data ({e}); the file may be truncated")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path}: not an IDX file (it must start with two zero bytes, a type byte and a dimension count)")
    if raw[2] != 0x08:
        raise UserError(f"{path}: IDX element type 0x{raw[2]:02x} is not supported; only unsigned bytes (0x08) are")
    header = 4 + 4 * raw[3]
    if raw[3] == 0 or len(raw) < header:
        raise UserError(f"{path}: the IDX header is truncated or declares no dimensions")
    dims = list(struct.unpack(f">{raw[3]}I", raw[4:header]))
    if len(raw) != header + math.prod(dims):
        raise UserError(f"{path}: IDX dimensions {dims} need {header + math.prod(dims)} bytes, the file has {len(raw)}")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def load_idx(folder, split):
    images, labels = idx_file(folder, split, "images", 3), idx_file(folder, split, "labels", 1)
    if not images or not labels:
        raise UserError(f"{folder}: no {split} split ({IDX_PREFIX[split]}-images-idx3-ubyte and {IDX_PREFIX[split]}-labels-idx1-ubyte)")
    x, y = read_idx(images), read_idx(labels)
    if x.dim() != 3 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
        raise UserError(f"{images}: expected [count, height, width] images and as many labels, got {list(x.shape)} and {list(y.shape)}")
    return x.unsqueeze(1), y.long()


def pixels_of(image):
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).reshape(image.height, image.width, -1).permute(2, 0, 1)


def decode_image(path, shape, resize):
    """A PNG or JPEG file as uint8 [C, H, W] for a model taking shape (C, H, W), read as cnnc reads
    it: EXIF orientation applied, alpha dropped, colour files whose pixels are all gray counted as
    gray. Another size or channel count is an error unless resize (stretch; luminance or replication)."""
    c, h, w = shape
    try:
        with Image.open(path) as opened:
            if opened.format not in ("PNG", "JPEG"):
                raise UserError(f"{path}: unsupported image format {opened.format}; use PNG or JPEG")
            image = ImageOps.exif_transpose(opened)
            image = image.convert("L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{path}: not a readable PNG or JPEG image ({e})")
    pixels = pixels_of(image)
    if pixels.shape[0] == 3 and c == 1 and bool((pixels == pixels[:1]).all()):
        pixels = pixels[:1]
    if tuple(pixels.shape) == (c, h, w):
        return pixels.contiguous()
    if not resize:
        raise UserError(f"{path}: image is {'x'.join(map(str, pixels.shape))} (channels x height x width) but the model "
                        f"takes {c}x{h}x{w}; pass --resize to resize and convert such images")
    return pixels_of(image.convert("L" if c == 1 else "RGB").resize((w, h), Image.LANCZOS)).contiguous()


def class_folders(root):
    """Class name -> its PNG/JPEG files, in sorted order (other files are ignored)."""
    if not os.path.isdir(root):
        raise UserError(f"{root}: image folder does not exist")
    folders = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        files = sorted(f for f in os.listdir(path) if not f.startswith(".") and f.lower().endswith((".png", ".jpg", ".jpeg")))
        if not files:
            raise UserError(f"{path}: class folder contains no PNG or JPEG images")
        folders[name] = [os.path.join(path, f) for f in files]
    return folders


def load_folder(root, classes, shape, resize):
    """root/CLASS/IMAGE, labelled by the position of CLASS in classes."""
    files, labels = [], []
    for name, paths in class_folders(root).items():
        if name not in classes:
            raise UserError(f"{os.path.join(root, name)}: class folder '{name}' is not a class of the training split {classes}")
        files += paths
        labels += [classes.index(name)] * len(paths)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        images = list(pool.map(lambda f: decode_image(f, shape, resize), files))
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def class_order(root, found, declared):
    """The model's CLASSES when it has them (the folders must be the same names), else the sorted folder names."""
    if len(found) < 2:
        raise UserError(f"{root}: an image folder needs at least 2 class subfolders, found {len(found)}")
    if declared and sorted(declared) != sorted(found):
        raise UserError(f"{root}: the class folders {found} do not match the model's classes {declared}")
    return list(declared or found)


def hold_out(labels, fraction, seed):
    """A seeded, stratified validation part (cnnc's rule; not cnnc's choice of samples):
    round(fraction x count) of each class, at least one and never all. Returns (kept, held) indices."""
    generator = torch.Generator().manual_seed(seed)
    held = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        take = min(len(members) - 1, max(1, math.floor(fraction * len(members) + 0.5)))
        held[members[torch.randperm(len(members), generator=generator)[:take]]] = True
    return (~held).nonzero().flatten(), held.nonzero().flatten()


def dense_output(net):
    """(K, H, W) when the model ends in a K x H x W feature map with H x W > 1: it predicts a class at
    every position and trains on image/mask pairs (cnnc's dense prediction); else None."""
    out = tuple(net.OUTPUT)
    return out if len(out) == 3 and out[1] * out[2] > 1 else None


def is_mask_folder(folder):
    return all(os.path.isdir(os.path.join(folder, d)) for d in ("images", "masks"))


def decode_mask(path, hw):
    """A PNG mask as uint8 [H, W] class indices: 8-bit gray (or colour whose pixels are all gray),
    exactly the model's output size (masks are never resized), never a palette or JPEG file."""
    try:
        with Image.open(path) as opened:
            if opened.format != "PNG":
                raise UserError(f"{path}: mask is {opened.format}, not PNG (masks must be lossless)")
            if opened.mode == "P":
                raise UserError(f"{path}: mask is a palette PNG; save masks as 8-bit grayscale, each pixel value the class index")
            if opened.mode not in ("L", "LA", "RGB", "RGBA"):
                raise UserError(f"{path}: mask has mode {opened.mode}; masks are 8-bit")
            pixels = pixels_of(opened.convert("RGB" if opened.mode in ("RGB", "RGBA") else "L"))
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{path}: not a readable PNG mask ({e})")
    if pixels.shape[0] == 3 and not bool((pixels == pixels[:1]).all()):
        raise UserError(f"{path}: mask has colour pixels; masks are grayscale, each pixel value the class index")
    if tuple(pixels.shape[1:]) != tuple(hw):
        raise UserError(f"{path}: mask is {pixels.shape[1]}x{pixels.shape[2]}, but the model predicts {hw[0]}x{hw[1]} (masks are not resized)")
    return pixels[0].contiguous()


def load_masks(root, shape, hw, resize):
    """root/images/NAME.(png|jpg) with root/masks/NAME.png, paired by NAME: (images, masks as int64 [N, H, W])."""
    def listed(sub, exts):
        return sorted(f for f in os.listdir(os.path.join(root, sub)) if not f.startswith(".") and f.lower().endswith(exts))
    images, masks = listed("images", (".png", ".jpg", ".jpeg")), listed("masks", (".png",))
    stem = lambda f: os.path.splitext(f)[0]
    by_stem = {stem(m): m for m in masks}
    lonely = [f for f in images if stem(f) not in by_stem]
    orphans = sorted(set(by_stem) - {stem(f) for f in images})
    if lonely:
        raise UserError(f"{os.path.join(root, 'images')}: {plural(len(lonely), 'image')} without a mask of the same name in masks/ (NAME.png): {', '.join(lonely[:3])}")
    if orphans:
        raise UserError(f"{os.path.join(root, 'masks')}: {plural(len(orphans), 'mask')} without an image of the same name in images/: {', '.join(by_stem[o] for o in orphans[:3])}")
    if not images:
        raise UserError(f"{os.path.join(root, 'images')}: holds no PNG or JPEG images")
    pairs = [(os.path.join(root, "images", f), os.path.join(root, "masks", by_stem[stem(f)])) for f in images]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        x = list(pool.map(lambda p: decode_image(p[0], shape, resize), pairs))
        y = list(pool.map(lambda p: decode_mask(p[1], hw), pairs))
    return torch.stack(x), torch.stack(y).long()


def load_data(args, net):
    """(training set, held-out set or None, 'test' or 'val', class names, notices); a set is (images,
    labels), the labels of image/mask pairs int64 masks [N, H, W]."""
    folder = args.data
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: data directory does not exist")
    declared = list(net.CLASSES) if net.CLASSES else None
    dense = dense_output(net)
    if idx_file(folder, "train", "images", 3) or idx_file(folder, "train", "labels", 1):
        if dense:
            raise UserError(f"{folder}: model {MODEL} predicts a class at each of {dense[1]}x{dense[2]} positions, so it trains on image/mask pairs "
                            "(images/NAME.png with masks/NAME.png, optionally under train/ and test/); this folder holds IDX files")
        train = load_idx(folder, "train")
        fashion = re.search(r"fashion[-_]?mnist", os.path.basename(os.path.abspath(folder)), re.I)
        classes = declared or (FASHION_MNIST_CLASSES if fashion else [str(i) for i in range(max(int(train[1].max()) + 1, 2))])
        if idx_file(folder, "test", "images", 3) or idx_file(folder, "test", "labels", 1):
            return train, load_idx(folder, "test"), "test", classes, []
        return train, None, "test", classes, [f"notice: {folder} has no test split (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte); "
                                              "training without evaluation (best.ckpt follows training accuracy)"]
    shape = tuple(net.INPUT)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise UserError(f"{folder}: holds image folders, but model {MODEL} takes input {'x'.join(map(str, shape))}, not a 1- or 3-channel image")
    if Image is None:
        raise UserError(f"{folder}: reading image folders needs Pillow (apt-get install python3-pil, or pip install pillow)")
    subdirs = [d for d in sorted(os.listdir(folder)) if not d.startswith(".") and os.path.isdir(os.path.join(folder, d))]
    split = not is_mask_folder(folder) and "train" in subdirs and all(d in ("train", "test") for d in subdirs)
    root = os.path.join(folder, "train") if split else folder
    if bool(dense) != is_mask_folder(root):
        raise UserError(f"{folder}: holds image/mask pairs (images/, masks/) for dense prediction, but model {MODEL} gives one prediction per image" if not dense else
                        f"{folder}: model {MODEL} predicts a class at each of {dense[1]}x{dense[2]} positions, so it trains on image/mask pairs "
                        "(images/NAME.png with masks/NAME.png, optionally under train/ and test/); this folder holds class folders")
    if dense:
        classes = declared or [str(i) for i in range(output_classes(net, args.loss))]
        load = lambda r: load_masks(r, shape, dense[1:], args.resize)
    else:
        classes = class_order(root, list(class_folders(root)), declared)
        load = lambda r: load_folder(r, classes, shape, args.resize)
    train = load(root)
    if split and "test" in subdirs:
        return train, load(os.path.join(folder, "test")), "test", classes, []
    if split or args.val_split == 0:
        return train, None, "val", classes, [f"notice: {folder} has no test split and no validation part (--val-split); "
                                             "training without evaluation (best.ckpt follows training accuracy)"]
    kept, held = hold_out(torch.zeros(len(train[1])) if dense else train[1], args.val_split, args.seed)
    if len(held) == 0:
        return train, None, "val", classes, [f"notice: {folder}: no class has two images to hold one out for validation; "
                                             "training without evaluation (best.ckpt follows training accuracy)"]
    notice = (f"notice: {folder} has no train/ and test/ split; holding out {len(held)} of its {len(train[1])} images "
              f"({100 * args.val_split:g}% {'of them' if dense else 'of each class'}, seeded) for validation (--val-split)")
    return (train[0][kept], train[1][kept]), (train[0][held], train[1][held]), "val", classes, [notice]


def output_classes(net, loss):
    """How many classes the model predicts: its output size (a dense model's channels), or 2 for a single output under bce."""
    dense = dense_output(net)
    size = dense[0] if dense else math.prod(net.OUTPUT)
    return 2 if loss == "bce" and size == 1 else size


def check_fits(net, data, where, loss, ignore):
    images, labels = data
    shape = tuple(images.shape[1:])
    if shape != tuple(net.INPUT) and (len(net.INPUT) != 1 or math.prod(shape) != net.INPUT[0]):
        raise UserError(f"{where}: images have shape {list(shape)} (channels, height, width) but the model's input is {list(net.INPUT)}")
    classes = output_classes(net, loss)
    counted = labels if ignore is None else labels[labels != ignore]
    if len(counted) and int(counted.max()) >= classes:
        what = "mask value" if labels.dim() > 1 else "label"
        raise UserError(f"{where}: {what} {int(counted.max())} is out of range: the model has {classes} classes ({what}s 0..{classes - 1})"
                        + ("" if ignore is None or labels.dim() == 1 else f" and the ignore label is {ignore}"))


class InMemory(torch.utils.data.Dataset):
    """Images and labels in memory, indexed a whole batch at a time (by a list of indices)."""

    def __init__(self, data):
        self.images, self.labels = data

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, indices):
        return self.images[indices], self.labels[indices]


class GlobalBatches(torch.utils.data.Sampler):
    """This process's part of each global batch. Each epoch (set_epoch, as with DistributedSampler)
    the samples are shuffled by a generator seeded with seed + epoch and cut into global batches of
    'batch'; process 'rank' of 'world' takes the rank-th equal slice of each, so a global batch holds
    the same samples whatever the number of processes. A last batch that does not split evenly is
    padded with samples from the start of the epoch (as DistributedSampler pads). With
    drop_single, a last batch that would leave one sample per process is left out (PyTorch's batch
    norm refuses to normalise a single value per channel in training)."""

    def __init__(self, size, batch, rank=0, world=1, seed=0, drop_single=False):
        self.size, self.batch, self.rank, self.world, self.seed = size, batch, rank, world, seed
        self.epoch = 0
        self.dropped = drop_single and 0 < size % batch <= world and size > batch

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return math.ceil(self.size / self.batch) - self.dropped

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        for start in range(0, len(self) * self.batch, self.batch):
            chunk = order[start:start + self.batch]
            per = math.ceil(len(chunk) / self.world)
            if per * self.world > len(chunk):
                chunk = torch.cat([chunk, order[:per * self.world - len(chunk)]])
            yield chunk[self.rank * per:(self.rank + 1) * per].tolist()


def shard(size, batch, rank, world):
    """Evaluation batches: a contiguous 1/world of the samples per process, in order, unpadded."""
    lo, hi = size * rank // world, size * (rank + 1) // world
    return [list(range(i, min(i + batch, hi))) for i in range(lo, hi, batch)]


# ---------------------------------------------------------------------------------------------
# Augmentation and normalisation, a batch at a time on the device

def shift_and_flip(x, dy, dx, mirror, fill=0):
    """cnnc's augmentation with given draws: each image shifted by (dy, dx) pixels (out[r, c] =
    in[r + dy, c + dx], 'fill' (black) where that falls outside), then mirrored where 'mirror'. A
    shift is a crop after padding with black pixels."""
    b, _, h, w = x.shape
    pad = int(max(dy.abs().max(), dx.abs().max()))
    padded = F.pad(x, (pad, pad, pad, pad), value=fill)
    rows = torch.arange(h, device=x.device) + pad + dy.view(-1, 1)
    cols = torch.arange(w, device=x.device) + pad + dx.view(-1, 1)
    out = padded[torch.arange(b, device=x.device).view(-1, 1, 1), :, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)
    return torch.where(mirror.view(-1, 1, 1, 1), out.flip(3), out)


def augment(x, y, generator, flip, crop, rank=0, world=1, fill=0):
    """Random flips (probability 1/2) and shifts (each offset uniform in -crop..crop) of this process's
    slice x (uint8) of a global batch, and of its masks y ([B, H, W]; class labels [B] stay as they
    are), the pixels shifted in from outside a mask 'fill' (the ignore label). The draws are made for
    the whole global batch, by a generator seeded alike in every process, so that they do not depend
    on the number of processes either."""
    if not flip and not crop:
        return x, y
    b = x.shape[0]
    n = b * world
    mirror = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    dy, dx = torch.randint(-crop, crop + 1, (2, n), generator=generator)
    mine = slice(rank * b, (rank + 1) * b)
    draws = dy[mine].to(x.device), dx[mine].to(x.device), mirror[mine].to(x.device)
    if y.dim() == 3:
        y = shift_and_flip(y.unsqueeze(1), *draws, fill=fill).squeeze(1)
    return shift_and_flip(x, *draws), y


def normaliser(net, channels, device):
    """uint8 batch -> float32 (pixel / 255 - mean) / std per channel, shaped as the model's input:
    a table of the 256 byte values per channel, computed in float64 and rounded once, as cnnc does."""
    mean = torch.tensor(net.MEAN, dtype=torch.float64).expand(channels).reshape(-1, 1)
    std = torch.tensor(net.STD, dtype=torch.float64).expand(channels).reshape(-1, 1)
    table = ((torch.arange(256, dtype=torch.float64) / 255 - mean) / std).float().to(device)
    channel = torch.arange(channels, device=device).view(1, -1, 1, 1)
    return lambda x: table[channel, x.long()].reshape(x.shape[0], *net.INPUT)
`;

const step = String.raw`

# ---------------------------------------------------------------------------------------------
# Loss, freezing, optimizer and learning rate: cnnc's training step

def folds(net, loss):
    """Whether the loss takes the values before the model's final softmax or sigmoid (its
    PROBABILITIES), as cnnc's training does: cross_entropy folds a softmax in, bce a sigmoid. The
    model then runs forward(x, logits=True)."""
    return net.PROBABILITIES is not None and FOLDED_BY_LOSS.get(loss) == net.PROBABILITIES


def loss_and_counts(z, y, args):
    """The loss and the counts behind the metrics, [correct, counted, intersection x C, union x C]
    (float64; C = 0 unless the model is dense). The loss is the mean over the batch, over every
    position of a dense model (z [N, K, H, W] against masks y [N, H, W], as cnnc), and over every
    output for bce and mse, leaving out labels equal to args.ignore (PyTorch's ignore_index; 0 when
    a batch has none); bce and mse take one output against the 0/1 label (z > 0 for bce, z rounded
    for mse, predicts) or K outputs against one-hot targets (the arg max predicts)."""
    loss, smoothing, ignore = args.loss, args.label_smoothing, args.ignore
    dense = z.dim() == 4 and z.shape[2] * z.shape[3] > 1
    if not dense:
        z = z.flatten(1)
    k = z.shape[1]
    valid = torch.ones_like(y, dtype=torch.bool) if ignore is None else y != ignore
    if loss == "cross_entropy":
        value = F.cross_entropy(z, y, label_smoothing=smoothing, ignore_index=-100 if ignore is None else ignore)
        predicted = z.argmax(1)
    else:
        label = torch.where(valid, y, torch.zeros_like(y))  # the ignored ones: any class, weighted 0
        target = label.to(z.dtype).unsqueeze(1) if k == 1 else F.one_hot(label, k).movedim(-1, 1).to(z.dtype)
        terms = F.binary_cross_entropy_with_logits(z, target, reduction="none") if loss == "bce" else F.mse_loss(z, target, reduction="none")
        weight = valid.unsqueeze(1).to(z.dtype)
        value = terms.mean() if ignore is None else (terms * weight).sum() / (weight.sum() * k).clamp(min=1)
        predicted = ((z[:, 0] > 0) if loss == "bce" else torch.round(z[:, 0])).long() if k == 1 else z.argmax(1)
    if ignore is not None and not bool(valid.any()):
        value = z.sum() * 0  # PyTorch gives nan for a batch of ignored labels; cnnc 0
    counts = [((predicted == y) & valid).sum(), valid.sum()]
    if dense:
        classes = 2 if loss == "bce" and k == 1 else k
        p, t = predicted[valid], y[valid]
        in_range = lambda v: v[(v >= 0) & (v < classes)]
        inter = torch.bincount(in_range(t[p == t]), minlength=classes)
        counts += [inter, torch.bincount(in_range(p), minlength=classes) + torch.bincount(in_range(t), minlength=classes) - inter]
    return value, torch.cat([c.double().reshape(-1) for c in counts])


def metrics(sums):
    """loss, accuracy (of the samples, or a dense model's pixels) and, for a dense model, the mean
    IoU over the classes predicted or labelled somewhere, from summed batch_sums."""
    loss_sum, seen, correct, counted = sums[:4].tolist()
    out = {"loss": loss_sum / seen, "acc": correct / max(counted, 1)}
    if len(sums) > 4:
        inter, union = sums[4:].reshape(2, -1)
        present = union > 0
        out["miou"] = float((inter[present] / union[present]).mean()) if bool(present.any()) else 0.0
    return out


def trained_parameters(net):
    return [(name, p) for name, p in net.named_parameters() if p.requires_grad]


def make_optimizer(named, args):
    """cnnc's optimizers have PyTorch's semantics: SGD (momentum without dampening, Nesterov, L2
    weight decay in the gradient), Adam (L2 in the gradient) and AdamW (decoupled), both with their
    bias corrections in float64. Frozen parameters get no state."""
    params = [p for _, p in named]
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov and args.momentum > 0,
                               weight_decay=args.weight_decay)
    kind = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps, weight_decay=args.weight_decay)


# PyTorch's optimizer state -> the suffix of cnnc's checkpoint names (optim.conv1.weight.m, ...).
SLOTS = {"momentum_buffer": "momentum", "exp_avg": "m", "exp_avg_sq": "v"}


def slots(args):
    if args.optimizer == "sgd":
        return ["momentum_buffer"] if args.momentum > 0 else []
    return ["exp_avg", "exp_avg_sq"]


def optimizer_tensors(optimizer, named, args):
    """The optimizer state under cnnc's names, for save_checkpoint (zeros before the first step, as cnnc starts)."""
    out = {}
    for name, p in named:
        state = optimizer.state.get(p, {})
        for slot in slots(args):
            out[f"optim.{name}.{SLOTS[slot]}"] = state.get(slot, torch.zeros_like(p)).detach()
    return out


def load_optimizer_state(optimizer, named, args, tensors, step):
    """Restores what optimizer_tensors wrote; Adam's step count is the run's."""
    for name, p in named:
        state = {}
        for slot in slots(args):
            key = f"optim.{name}.{SLOTS[slot]}"
            if key not in tensors:
                raise UserError(f"the checkpoint has no optimizer state {key} (was it written with another optimizer?)")
            state[slot] = tensors[key].to(p.device, p.dtype).reshape(p.shape).clone()
        if args.optimizer != "sgd":
            state["step"] = torch.tensor(float(step))
        if state:
            optimizer.state[p] = state


def learning_rate(args, step, steps_per_epoch, total_steps):
    """cnnc's schedule (src/runtime/schedule.ts) for one step (0-based, over the run): a linear
    warm-up over 'warmup' epochs ((step + 1) / W) times the decay: constant, step (gamma to the
    power epoch // step_size) or cosine over the steps after the warm-up."""
    w = max(0.0, args.warmup) * steps_per_epoch
    warm = (step + 1) / w if w > 0 and step + 1 < w else 1.0
    if args.schedule == "constant":
        decay = 1.0
    elif args.schedule == "step":
        decay = args.gamma ** ((step // max(1, steps_per_epoch)) // args.step_size)
    else:
        start = min(w, total_steps)
        span = total_steps - start
        decay = 1.0 if span <= 0 else 0.5 * (1 + math.cos(math.pi * min(max(step - start, 0), span) / span))
    return args.lr * warm * decay


def train_step(model, optimizer, x, y, lr, args, logits):
    """One optimizer step on a normalised batch (logits: see folds). Returns the loss and correct
    count of its forward pass as tensors, so that nothing waits for the device."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss, counts = loss_and_counts(model(x, logits=logits), y, args)
    loss.backward()
    optimizer.step()
    return loss.detach(), counts


def batch_sums(loss, counts, count, device):
    """loss x count, count, then loss_and_counts' counts: what the processes sum for the epoch line."""
    return torch.cat([torch.stack([loss.double() * count, torch.tensor(float(count), dtype=torch.float64, device=device)]), counts])


def zero_sums(net, args, device):
    """batch_sums' zeros: 4 values, and a dense model's intersection and union per class."""
    width = 4 + (2 * output_classes(net, args.loss) if dense_output(net) else 0)
    return torch.zeros(width, dtype=torch.float64, device=device)


@torch.no_grad()
def evaluate(net, batches, prepare, args, device, logits):
    """The summed batch_sums over the held-out batches, in eval mode (running statistics, no dropout)."""
    net.eval()
    sums = zero_sums(net, args, device)
    for x, y in batches:
        y = y.to(device)
        loss, counts = loss_and_counts(net(prepare(x.to(device)), logits=logits), y, args)
        sums += batch_sums(loss, counts, len(y), device)
    return sums
`;

const run = String.raw`

# ---------------------------------------------------------------------------------------------
# Processes: one, or one per GPU (or share of the CPU) under torchrun

class Processes:
    """The rank and world size (torchrun's environment; 0 and 1 without it), the device and the process group."""

    def __init__(self, device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":
            if not torch.cuda.is_available():
                raise UserError("--device cuda: PyTorch sees no CUDA device (torch.cuda.is_available() is False)")
            if local >= torch.cuda.device_count():
                raise UserError(f"local rank {local} has no GPU of its own: this node has {torch.cuda.device_count()}; lower --nproc_per_node")
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
            torch.backends.cudnn.benchmark = True  # the shapes are fixed: let cuDNN pick its fastest kernels
        else:
            self.device = torch.device("cpu")
        self.backend = "nccl" if self.device.type == "cuda" else "gloo"
        if self.world > 1:
            dist.init_process_group(self.backend)

    @property
    def main(self):
        return self.rank == 0

    def sum(self, t):
        """Sums a tensor over the processes, in place."""
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# The run

class Log:
    """Lines from rank 0 only; the epoch records also go to OUT/train.jsonl."""

    def __init__(self, procs, out):
        self.procs, self.path = procs, os.path.join(out, "train.jsonl")

    def line(self, text):
        if self.procs.main:
            print(text, flush=True)

    def records(self, history):
        """Writes the log from the checkpoint's history (a resumed run drops lines written after it)."""
        if self.procs.main:
            with open(self.path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in history)


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def fmt_time(seconds):
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def settings(args):
    """The run's settings as the checkpoint records them (a resume names those that changed)."""
    keys = ["epochs", "batch", "lr", "optimizer", "momentum", "nesterov", "weight_decay", "beta1", "beta2", "eps", "loss",
            "label_smoothing", "ignore", "schedule", "step_size", "gamma", "warmup", "seed", "flip", "crop", "freeze"]
    return {k: getattr(args, k) for k in keys}


def start_state(args, net, optimizer, named, log):
    """(epoch, step, best, history) to start from: --resume reads OUT/last.ckpt whole, --init only weights."""
    last = os.path.join(args.out, "last.ckpt")
    if not args.resume:
        if os.path.exists(last):
            raise UserError(f"{args.out}: already holds a training run (last.ckpt); pass --resume to continue it, or choose another --out")
        if args.init:
            load_checkpoint(net, args.init)
            log.line(f"init from {args.init}")
        return 0, 0, None, []
    if not os.path.exists(last):
        raise UserError(f"{args.out}: --resume: no last.ckpt to resume from")
    tensors = {}
    meta = load_checkpoint(net, last, extra=tensors)
    if meta.get("format") != META_FORMAT:
        raise UserError(f"{last}: is not a checkpoint written by this train.py (its meta.format is {meta.get('format')!r}, not {META_FORMAT!r})")
    load_optimizer_state(optimizer, named, args, tensors, meta["step"])
    changed = [f"{k} {v!r} -> {getattr(args, k)!r}" for k, v in meta["settings"].items() if getattr(args, k) != v]
    if changed:
        log.line(f"notice: resuming with changed settings: {', '.join(changed)}")
    log.line(f"resuming {MODEL} at epoch {meta['epoch'] + 1}, step {meta['step'] + 1} from {last}")
    return meta["epoch"], meta["step"], meta["best"], meta["history"]


def epoch_seed(seed, epoch, rank=0):
    """A seed per epoch (and process), so that a resumed run draws what an uninterrupted one would."""
    return ((seed * 1_000_003 + epoch) * 1_000_003 + rank) % 2**63


def load_sets(args, net, log):
    train_set, held, held_name, classes, notices = load_data(args, net)
    if args.limit_train:
        train_set = tuple(t[:args.limit_train] for t in train_set)
    if held is not None and args.limit_test:
        held = tuple(t[:args.limit_test] for t in held)
    check_fits(net, train_set, args.data, args.loss, args.ignore)
    if held is not None:
        check_fits(net, held, args.data, args.loss, args.ignore)
    for n in notices:
        log.line(n)
    return train_set, held, held_name, classes


def distribute(net, args, procs, log):
    """The model the steps run: net itself in one process, else DistributedDataParallel around it
    (after SyncBatchNorm conversion with --sync-bn; the state_dict names stay cnnc's)."""
    if procs.world == 1:
        if args.sync_bn:
            log.line("notice: --sync-bn has no effect in a single process")
        return net, net
    if args.sync_bn:
        if procs.device.type != "cuda":
            raise UserError("--sync-bn needs CUDA devices: PyTorch's SyncBatchNorm does not run on the CPU")
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return DistributedDataParallel(net, device_ids=[procs.device] if procs.device.type == "cuda" else None), net


def save(args, net, optimizer, named, meta, best):
    extra = optimizer_tensors(optimizer, named, args)
    save_checkpoint(net, os.path.join(args.out, "last.ckpt"), meta=meta, extra=extra)
    if best:  # last before best, as cnnc writes them
        save_checkpoint(net, os.path.join(args.out, "best.ckpt"), meta=meta, extra=extra)


def main(argv=None):
    args = parse_args(argv)
    procs = None
    try:
        procs = Processes(args.device)
        run(args, procs)
        procs.barrier()
    except BrokenPipeError:
        os._exit(141)  # the reader of the log went away (| head): quietly, as cnnc does
    except (UserError, CheckpointError, OSError) as e:
        prefix = f"[rank {procs.rank}] " if procs and procs.world > 1 else ""
        sys.exit(f"{prefix}train.py: error: {e}")
    finally:
        if procs:
            procs.close()


class Run:
    """What the epochs share: the model (net, and model, the DistributedDataParallel around it),
    the optimizer, the data and the counts."""

    def __init__(self, args, procs, log):
        if args.batch % procs.world:
            raise UserError(f"--batch {args.batch} does not split evenly among {procs.world} processes; give a multiple of {procs.world}")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise UserError(f"{args.out}: --out is a file, not a folder")
        self.args, self.procs, self.log = args, procs, log
        torch.manual_seed(args.seed)
        net = build_model(MODEL)
        self.train_set, self.held, self.held_name, self.classes = load_sets(args, net, log)
        net.freeze(args.freeze)
        self.named = trained_parameters(net)
        if not self.named:
            raise UserError(f"model {MODEL} has no trainable parameters (all frozen or none); there is nothing to train")
        self.frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
        if procs.main:
            os.makedirs(args.out, exist_ok=True)
        net.to(procs.device)
        self.optimizer = make_optimizer(self.named, args)
        self.epoch, self.step, self.best, self.history = start_state(args, net, self.optimizer, self.named, log)
        self.model, self.net = distribute(net, args, procs, log)
        self.local = args.batch // procs.world
        has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
        self.sampler = GlobalBatches(len(self.train_set[1]), args.batch, procs.rank, procs.world, args.seed, drop_single=has_bn)
        self.loader = torch.utils.data.DataLoader(InMemory(self.train_set), sampler=self.sampler, batch_size=None,
                                                  num_workers=args.workers, pin_memory=procs.device.type == "cuda")
        held = self.held
        self.held_batches = None if held is None else [(held[0][i], held[1][i]) for i in shard(len(held[1]), self.local, procs.rank, procs.world)]
        self.prepare = normaliser(self.net, self.train_set[0].shape[1], procs.device)
        self.logits = folds(self.net, args.loss)
        self.steps_per_epoch = len(self.sampler)
        self.total = self.steps_per_epoch * args.epochs

    def header(self):
        args, procs = self.args, self.procs
        if self.epoch >= args.epochs:
            return f"nothing to do: the run in {args.out} has finished its {plural(self.epoch, 'epoch')} (raise --epochs to train further)"
        split = f" = {procs.world} processes x {self.local}" if procs.world > 1 else ""
        frozen = f", {self.frozen} parameters frozen" if self.frozen else ""
        if self.sampler.dropped:
            self.log.line(f"notice: each epoch's last batch ({len(self.train_set[1]) % args.batch} samples) is left out: it would leave one sample "
                          "per process, and PyTorch's batch norm refuses to train on one")
        return (f"training {MODEL}: {plural(args.epochs, 'epoch')} of {plural(self.steps_per_epoch, 'step')} (batch {args.batch}{split}), "
                f"{len(self.train_set[1])} training and {0 if self.held is None else len(self.held[1])} {self.held_name} samples{frozen}, "
                f"device {procs.device.type}" + (f", {procs.world} processes ({procs.backend})" if procs.world > 1 else ""))

    def train_epoch(self):
        """One epoch's steps; returns the batch_sums summed over all processes, the last lr and the seconds."""
        args, procs, epoch = self.args, self.procs, self.epoch
        self.sampler.set_epoch(epoch)
        torch.manual_seed(epoch_seed(args.seed, epoch, procs.rank))  # dropout: each process its own masks
        generator = torch.Generator().manual_seed(epoch_seed(args.seed, epoch))  # augmentation: the global batch's draws
        self.model.train()  # model.py keeps frozen batch norms in eval mode, as cnnc runs them
        sums = zero_sums(self.net, args, procs.device)
        every = math.ceil(self.steps_per_epoch / 10) if self.steps_per_epoch >= 20 else 0
        started = time.perf_counter()
        for i, (x, y) in enumerate(self.loader, 1):
            x, y = augment(x.to(procs.device, non_blocking=True), y.to(procs.device, non_blocking=True), generator, args.flip, args.crop,
                           procs.rank, procs.world, fill=0 if args.ignore is None else args.ignore)
            x = self.prepare(x)
            lr = learning_rate(args, self.step, self.steps_per_epoch, self.total)
            loss, counts = train_step(self.model, self.optimizer, x, y, lr, args, self.logits)
            sums += batch_sums(loss, counts, len(y), procs.device)
            self.step += 1
            if every and i % every == 0 and i < self.steps_per_epoch and procs.main:
                self.progress(i, sums, time.perf_counter() - started)
        seconds = time.perf_counter() - started
        return procs.sum(sums), lr, seconds

    def progress(self, i, sums, seconds):
        """A line during the epoch, from rank 0's share of the batches."""
        m = metrics(sums)
        share = " (rank 0's share)" if self.procs.world > 1 else ""
        miou = f"  mIoU {m['miou']:.4f}" if "miou" in m else ""
        self.log.line(f"epoch {self.epoch + 1}/{self.args.epochs} {100 * i // self.steps_per_epoch:3d}%  loss {m['loss']:.4f}  "
                      f"acc {100 * m['acc']:.2f}%{miou}  {float(sums[1]) * self.procs.world / seconds:.0f} img/s{share}")

    def finish_epoch(self, sums, lr, seconds):
        """Evaluates, logs and (rank 0) writes the checkpoints."""
        args, procs = self.args, self.procs
        m, seen = metrics(sums), float(sums[1])
        if not math.isfinite(m["loss"]):
            raise UserError(f"the loss became {m['loss']} in epoch {self.epoch + 1}; training diverged: "
                            "try a lower --lr or a warm-up (--warmup 1)")
        record = {"type": "epoch", "epoch": self.epoch + 1, "step": self.step, **m}
        held_text, name = "", self.held_name
        if self.held_batches is not None:
            h = metrics(procs.sum(evaluate(self.net, self.held_batches, self.prepare, args, procs.device, self.logits)))
            record.update({f"{name}_{k}": v for k, v in h.items()})
            held_text = f"  {name} loss {h['loss']:.4f}  {name} acc {100 * h['acc']:.2f}%" + (f"  {name} mIoU {h['miou']:.4f}" if "miou" in h else "")
        record.update({"lr": lr, "images_per_s": round(seen / max(seconds, 1e-9), 1), "seconds": round(seconds, 3)})
        self.history = self.history + [record]
        # The best epoch: by held-out (else training) accuracy, or a dense model's mean IoU, as cnnc.
        best = {"epoch": self.epoch + 1, **{k: record.get(f"{name}_{k}", record.get(k)) for k in ("acc", "miou") if k in record}}
        score = lambda b: b.get("miou", b["acc"])
        is_best = self.best is None or score(best) > score(self.best)
        if is_best:
            self.best = best
        self.epoch += 1
        miou = f"  mIoU {record['miou']:.4f}" if "miou" in record else ""
        self.log.line(f"epoch {self.epoch}/{args.epochs}  loss {record['loss']:.4f}  acc {100 * record['acc']:.2f}%{miou}{held_text}  "
                      f"lr {lr:.3g}  {record['images_per_s']:.0f} img/s  {fmt_time(seconds)}")
        if procs.main:
            meta = {"format": META_FORMAT, "epoch": self.epoch, "step": self.step, "best": self.best, "history": self.history,
                    "classes": self.classes, "settings": settings(args), "processes": procs.world}
            save(args, self.net, self.optimizer, self.named, meta, is_best)
            self.log.records(self.history)
        procs.barrier()


def run(args, procs):
    log = Log(procs, args.out)
    r = Run(args, procs, log)
    log.records(r.history)
    log.line(r.header())
    if args.warmup > 0 and args.warmup >= args.epochs and r.epoch < args.epochs:
        log.line(f"warning: the warm-up (--warmup {args.warmup:g}) spans the whole run of {plural(args.epochs, 'epoch')}: the learning rate only rises")
    while r.epoch < args.epochs:
        r.finish_epoch(*r.train_epoch())
    if r.best:
        where = r.held_name if r.held is not None else "training"
        score = f"mean IoU {r.best['miou']:.4f}" if "miou" in r.best else f"accuracy {100 * r.best['acc']:.2f}%"
        log.line(f"{MODEL}: best {where} {score} at epoch {r.best['epoch']}; "
                 f"checkpoints: {os.path.join(args.out, 'last.ckpt')}, {os.path.join(args.out, 'best.ckpt')}")


if __name__ == "__main__":
    main()
`;

/**
 * The imports (after the docstring), the argparse helpers (after the settings; train-py.ts's
 * add_settings follows them) and the code.
 */
export const TRAIN_PY_BODY = { imports, commandLine, code: parseArgs + data + step + run };
