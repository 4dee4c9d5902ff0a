"""fashion_cnn.py — a small convolutional network (conv32-pool-conv64-pool-
fc128-dropout-fc10) on Fashion-MNIST, trained against psd by the workers
psrun starts from fashion_cnn.yaml (worker.command), or by plain PyTorch in
one process (--local) for comparison.

Under psrun each worker opens psd.Client($PSD_JOB) (rank from $PSD_RANK),
takes every W-th training image from its rank on, and per batch: pushes
its gradient and pulls the next round's θ in one exchange (push_pull). The
network's parameters are views of the pulled θ (torch.from_numpy of
Client.tensor_views) and its .grad tensors views of one gradient buffer,
so neither θ nor the gradient is copied tensor by tensor. psd applies the
average of the round's gradients with the job's optimizer. Rank 0 scores
the test set after every epoch and writes the final θ to the job's output
folder (manifest.json + one .npy per tensor, psd.save_model).

    psrun fashion_cnn.yaml                      # 2 workers, as the job says
    fashion_cnn.py --local                      # plain PyTorch, one process
    fashion_cnn.py --evaluate out/fashion_cnn   # a saved model's accuracy

--train-limit N and --epochs E (also from psrun: PSD_CNN_ARGS) train on
the first N images for E epochs."""
import argparse
import gzip
import os
import shlex
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's training pixels, scaled to [0, 1]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)    # 28 -> 26, pool -> 13
        self.conv2 = nn.Conv2d(32, 64, 3)   # 13 -> 11, pool -> 5
        self.fc1 = nn.Linear(64 * 5 * 5, 128)
        self.fc2 = nn.Linear(128, 10)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.drop(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


def read_idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndims).reshape(dims)


def labels_path(images):
    d, b = os.path.split(images)
    return os.path.join(d, b.replace("images-idx3", "labels-idx1"))


def load(images, limit=None):
    x = read_idx(images)[:limit].astype(np.float32) / 255.0
    y = read_idx(labels_path(images))[:limit].astype(np.int64)
    x = (x - MEAN) / STD
    return torch.from_numpy(x[:, None, :, :].copy()), torch.from_numpy(y)


def read_job(path):
    with open(path) as f:
        job = yaml.safe_load(f)
    folder = os.path.dirname(os.path.abspath(path))
    job["_path"] = os.path.abspath(path)
    for key in ("train", "test"):
        job["data"][key] = os.path.join(folder, job["data"][key])
    if job.get("output"):
        job["output"] = os.path.join(folder, job["output"])
    return job


def accuracy(net, x, y, batch=1000):
    net.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            right += int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    net.train()
    return right / len(y)


def log(rank, text):
    print(f"fashion_cnn{'' if rank is None else f' w{rank}'}: {text}", flush=True)


def train_psd(a, job):
    import psd
    torch.set_num_threads(1)  # psrun runs a worker per core
    torch.manual_seed(job["training"].get("seed", 7))
    with psd.Client(job["_path"]) as c:
        rank, W = c.rank, c.num_workers
        B = job["training"]["batch_size"]
        x, y = load(job["data"]["train"], a.train_limit)
        xs, ys = x[rank::W], y[rank::W]
        xt, yt = load(job["data"]["test"]) if rank == 0 else (None, None)
        per_rank = -(-len(y) // W)  # ceil(n / W)
        steps = -(-per_rank // B)   # ceil(per_rank / B): the same for every rank (sync rounds)
        net = Net()
        theta = c.pull()
        grad = np.zeros(c.num_params, np.float32)
        tv, gv = c.tensor_views(theta), c.tensor_views(grad)
        names = {n for n, _ in net.named_parameters()}
        if names != set(tv):
            sys.exit(f"fashion_cnn: the job's tensors {sorted(tv)} are not the network's "
                     f"{sorted(names)}")
        for n, p in net.named_parameters():
            if tuple(p.shape) != tv[n].shape:
                sys.exit(f"fashion_cnn: {n} is {tuple(p.shape)} in the network, "
                         f"{tv[n].shape} in the job")
            p.data = torch.from_numpy(tv[n])   # θ's memory: a pull updates the network
            p.grad = torch.from_numpy(gv[n])   # the gradient buffer's memory
        epochs = a.epochs or job["training"]["epochs"]
        g = torch.Generator().manual_seed(job["training"].get("seed", 7) * 1000 + rank)
        t_all, train_s = time.monotonic(), 0.0
        for e in range(epochs):
            t0 = time.monotonic()
            order = torch.randperm(len(ys), generator=g)
            total = 0.0
            for s in range(steps):
                idx = order[(s * B) % len(ys):][:B]
                if len(idx) == 0:
                    idx = order[:B]
                grad[:] = 0
                loss = F.cross_entropy(net(xs[idx]), ys[idx])
                loss.backward()
                total += float(loss)
                c.push_pull(grad, samples=len(idx), out=theta)
            dt = time.monotonic() - t0  # training only: the test set's scoring is not in it
            train_s += dt
            c.report(total / steps, steps * B / dt)
            if rank == 0:
                log(rank, f"epoch {e + 1}/{epochs}: loss {total / steps:.4f}, "
                          f"test accuracy {accuracy(net, xt, yt):.4f}, {dt:.1f} s")
            else:
                log(rank, f"epoch {e + 1}/{epochs}: loss {total / steps:.4f}, {dt:.1f} s")
        for n, p in net.named_parameters():  # autograd accumulated in place
            assert p.grad.data_ptr() == gv[n].ctypes.data, f"{n}.grad left the gradient buffer"
        c.done()
        c.pull_final(out=theta)
        wall = time.monotonic() - t_all
        if rank == 0:
            acc = accuracy(net, xt, yt)
            log(rank, f"done: test accuracy {acc:.4f}, {epochs} epochs: {train_s / epochs:.1f} s "
                      f"of training per epoch, {wall:.1f} s in all, {W} workers, version "
                      f"{c.version}")
            if job.get("output"):
                psd.save_model(job["output"], job["job"], c.version, tv)
                log(rank, f"wrote {job['output']}")
            if a.min_accuracy and acc < a.min_accuracy:
                sys.exit(f"fashion_cnn: test accuracy {acc:.4f} is below {a.min_accuracy}")


def train_local(a, job):
    """Plain PyTorch, one process: the same network, data and optimizer
    (momentum SGD at the job's lr and cosine schedule), batches of
    batch_size × workers (the examples one sync round of psd averages)."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(job["training"].get("seed", 7))
    x, y = load(job["data"]["train"], a.train_limit)
    xt, yt = load(job["data"]["test"])
    opt_cfg = job.get("optimizer", {})
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=opt_cfg.get("lr", 0.1),
                          momentum=opt_cfg.get("momentum", 0.9)
                          if opt_cfg.get("type") == "momentum" else 0)
    B = job["training"]["batch_size"] * job["workers"]
    epochs = a.epochs or job["training"]["epochs"]
    sched = opt_cfg.get("schedule", {})
    if sched.get("type") == "cosine":  # as psd's: lr · (1 + cos(π t / T)) / 2, t capped at T
        T = sched["total_steps"]
        lr_at = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.5 * (1 + np.cos(np.pi * min(t, T) / T)))
    else:
        lr_at = None
    t_all, train_s = time.monotonic(), 0.0
    for e in range(epochs):
        t0 = time.monotonic()
        order = torch.randperm(len(y))
        total, steps = 0.0, 0
        for s in range(0, len(y), B):
            idx = order[s:s + B]
            opt.zero_grad()
            loss = F.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            if lr_at is not None:
                lr_at.step()
            total += float(loss)
            steps += 1
        dt = time.monotonic() - t0
        train_s += dt
        log(None, f"local epoch {e + 1}/{epochs}: loss {total / steps:.4f}, "
                  f"test accuracy {accuracy(net, xt, yt):.4f}, {dt:.1f} s")
    wall = time.monotonic() - t_all
    log(None, f"local done: test accuracy {accuracy(net, xt, yt):.4f}, {epochs} epochs: "
              f"{train_s / epochs:.1f} s of training per epoch, {wall:.1f} s in all, "
              f"{a.threads} threads")


def evaluate(a, job):
    """The test accuracy of a saved model, loaded into the network."""
    import psd
    torch.set_num_threads(a.threads)
    m = psd.load_model(a.evaluate)
    net = Net()
    net.load_state_dict({n: torch.from_numpy(v) for n, v in m.tensors.items()})
    xt, yt = load(job["data"]["test"])
    log(None, f"{a.evaluate}: test accuracy {accuracy(net, xt, yt):.4f} (version {m.version})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--job", default=os.environ.get("PSD_JOB") or
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_cnn.yaml"))
    p.add_argument("--local", action="store_true", help="plain PyTorch in one process")
    p.add_argument("--evaluate", metavar="FOLDER", help="score a saved model on the test set")
    p.add_argument("--train-limit", type=int, help="train on the first N images only")
    p.add_argument("--epochs", type=int, help="epochs (default: the job's)")
    p.add_argument("--threads", type=int, default=2, help="--local/--evaluate: torch threads")
    p.add_argument("--min-accuracy", type=float, help="exit 1 below this final test accuracy")
    args = sys.argv[1:] + shlex.split(os.environ.get("PSD_CNN_ARGS", ""))
    a = p.parse_args(args)
    job = read_job(a.job)
    if a.evaluate:
        evaluate(a, job)
    elif a.local:
        train_local(a, job)
    else:
        train_psd(a, job)


if __name__ == "__main__":
    main()
