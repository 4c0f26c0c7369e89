"""Runs pieces of exported train.py files for test/export-train.test.ts, all in one process
(importing torch takes seconds). Reads a JSON job on stdin, writes a JSON answer on stdout.

The job: {"steps": [STEP...], "schedules": [SCHEDULE...], "batches": [BATCH...], "convert": [DIR...],
"samplers": [SAMPLER...], "defaults": [DIR...], "runs": [RUN...]}; the answer has a list of results under each key.
  STEP      {"dir": D, "init": CKPT, "batches": [{"x": F32_FILE, "y": I64_FILE, "count": N}], "lrs": [...],
             "out": CKPT}: imports D/train.py (and D/model.py), loads the cnnc checkpoint CKPT into the
             model, freezes as train.py does, and runs train.py's train_step on each batch (inputs
             already normalised) with the given learning rates, in float64, so that what differs from
             cnnc's float32 graph is cnnc's rounding alone; writes parameters, buffers and optimizer
             state (rounded to float32) with save_checkpoint to "out". Answers {"losses", "correct"}.
  SCHEDULE  {"dir": D, "argv": [...], "steps_per_epoch": S, "epochs": E}: train.py's learning_rate
             for every step of the run, with its flags parsed from argv.
  BATCH     {"dir": D, "images": U8_FILE, "count": N, "dy": [...], "dx": [...], "mirror": [...],
             "out": F32_FILE}: train.py's shift_and_flip with these draws, then its normalisation;
             writes the float32 batch.
  CONVERT   D: the state_dict keys of D's model before and after SyncBatchNorm conversion.
  SAMPLER   {"dir": D, "size": N, "batch": B, "world": W, "seed": S, "epoch": E, "drop_single": bool}: the
            index lists train.py's GlobalBatches gives each of the W processes in epoch E, rank by rank.
  DEFAULTS  D: the settings train.py's flags default to (vars of parse_args with --data only).
  RUN       {"dir": D, "argv": [...]}: D/train.py's main(argv) in this process, its output captured.
            Answers {"log"} and, when it exits with an error, "error".
"""
import contextlib
import importlib
import io
import json
import sys

import torch


def load_package(folder):
    """train.py and model.py of one exported folder (a fresh import: every folder has its own)."""
    for name in ("train", "model"):
        sys.modules.pop(name, None)
    sys.path.insert(0, folder)
    try:
        return importlib.import_module("train")
    finally:
        sys.path.remove(folder)


def read(path, dtype):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=dtype)


def step(job):
    train = load_package(job["dir"])
    args = train.parse_args(["--data", "."])
    net = train.build_model(train.MODEL)
    train.load_checkpoint(net, job["init"])
    net.double()
    net.freeze(args.freeze)
    named = train.trained_parameters(net)
    optimizer = train.make_optimizer(named, args)
    net.train()
    logits = train.folds(net, args.loss)
    losses, correct = [], []
    for batch, lr in zip(job["batches"], job["lrs"]):
        x = read(batch["x"], torch.float32).reshape(batch["count"], *net.INPUT).double()
        y = read(batch["y"], torch.int64)
        if train.dense_output(net):
            y = y.reshape(batch["count"], *net.OUTPUT[1:])  # masks
        loss, counts = train.train_step(net, optimizer, x, y, lr, args, logits)
        losses.append(loss.item())
        correct.append(int(counts[0]))
    train.save_checkpoint(net, job["out"], extra=train.optimizer_tensors(optimizer, named, args))
    return {"losses": losses, "correct": correct}


def schedule(job):
    train = load_package(job["dir"])
    args = train.parse_args(["--data", "."] + job["argv"])
    total = job["steps_per_epoch"] * job["epochs"]
    return [train.learning_rate(args, s, job["steps_per_epoch"], total) for s in range(total)]


def batch(job):
    train = load_package(job["dir"])
    net = train.build_model(train.MODEL)
    images = read(job["images"], torch.uint8).reshape(job["count"], -1, net.INPUT[-2], net.INPUT[-1])
    shifted = train.shift_and_flip(images, torch.tensor(job["dy"]), torch.tensor(job["dx"]), torch.tensor(job["mirror"]))
    out = train.normaliser(net, images.shape[1], torch.device("cpu"))(shifted)
    with open(job["out"], "wb") as f:
        f.write(out.contiguous().numpy().tobytes())
    return list(out.shape)


def convert(folder):
    train = load_package(folder)
    net = train.build_model(train.MODEL)
    before = list(net.state_dict())
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    converted = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    return {"before": before, "after": list(synced.state_dict()), "converted": converted}


def sampler(job):
    train = load_package(job["dir"])
    out = []
    for rank in range(job["world"]):
        s = train.GlobalBatches(job["size"], job["batch"], rank, job["world"], job["seed"], job.get("drop_single", False))
        s.set_epoch(job["epoch"])
        out.append(list(s))
    return out


def defaults(folder):
    return vars(load_package(folder).parse_args(["--data", "."]))


def run(job):
    train = load_package(job["dir"])
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            train.main(job["argv"])
    except SystemExit as e:
        return {"log": out.getvalue(), "error": str(e)}
    return {"log": out.getvalue()}


def main():
    torch.set_num_threads(1)
    job = json.load(sys.stdin)
    json.dump({
        "steps": [step(j) for j in job.get("steps", [])],
        "schedules": [schedule(j) for j in job.get("schedules", [])],
        "batches": [batch(j) for j in job.get("batches", [])],
        "convert": [convert(d) for d in job.get("convert", [])],
        "samplers": [sampler(j) for j in job.get("samplers", [])],
        "defaults": [defaults(d) for d in job.get("defaults", [])],
        "runs": [run(j) for j in job.get("runs", [])],
        "torch": torch.__version__,
    }, sys.stdout)


main()
