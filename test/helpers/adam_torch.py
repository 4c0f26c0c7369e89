"""PyTorch's Adam/AdamW on one dense layer with softmax cross-entropy: the reference for
test/adam-torch.test.ts. Reads a JSON job on stdin, writes the final weight and bias and the
per-step losses as JSON on stdout; a list of jobs gives a list of results (one torch import).

A job: {"optimizer": "adam"|"adamw", "lr", "beta1", "beta2", "eps", "weight_decay",
"inputs", "classes", "weight": [K*D], "bias": [K], "batches": [{"x": [N*D], "y": [N]}], "steps"}.
Step s uses batches[s % len(batches)]. With "legacy": true the update is written out by hand with
the bias correction on float32-rounded betas (cnnc's graphs before the fix), to show that the test's
tolerance catches that.
"""
import json
import sys

import torch


def f32(v):
    return torch.tensor(v, dtype=torch.float32).item()


def legacy_step(params, state, job, t):
    """Adam/AdamW as torch does it, except 1 - f32(beta)^t in the bias correction."""
    b1, b2, lr, wd = job["beta1"], job["beta2"], job["lr"], job["weight_decay"]
    with torch.no_grad():
        for p in params:
            g = p.grad
            if job["optimizer"] == "adam":
                g = g.add(p, alpha=wd)
            else:
                p.mul_(1 - lr * wd)
            m, v = state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p)))
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            bc1, bc2 = 1 - f32(b1) ** t, 1 - f32(b2) ** t
            p.addcdiv_(m, v.sqrt() / bc2 ** 0.5 + job["eps"], value=-lr / bc1)


def run(job):
    d, k = job["inputs"], job["classes"]
    fc = torch.nn.Linear(d, k)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor(job["weight"], dtype=torch.float32).reshape(k, d))
        fc.bias.copy_(torch.tensor(job["bias"], dtype=torch.float32))
    kind = torch.optim.Adam if job["optimizer"] == "adam" else torch.optim.AdamW
    params = list(fc.parameters())
    opt = kind(params, lr=job["lr"], betas=(job["beta1"], job["beta2"]), eps=job["eps"], weight_decay=job["weight_decay"])
    batches = [(torch.tensor(b["x"], dtype=torch.float32).reshape(-1, d), torch.tensor(b["y"], dtype=torch.int64)) for b in job["batches"]]
    losses, legacy = [], {}
    for s in range(job["steps"]):
        x, y = batches[s % len(batches)]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(fc(x), y)
        loss.backward()
        if job.get("legacy"):
            legacy_step(params, legacy, job, s + 1)
        else:
            opt.step()
        losses.append(loss.item())
    return {"weight": fc.weight.detach().flatten().tolist(), "bias": fc.bias.detach().tolist(), "losses": losses, "torch": torch.__version__}


def main():
    jobs = json.load(sys.stdin)
    torch.set_num_threads(1)
    json.dump([run(j) for j in jobs] if isinstance(jobs, list) else run(jobs), sys.stdout)


main()
