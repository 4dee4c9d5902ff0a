"""clicks_fm_torch.py — a factorization machine in PyTorch on a click log
(psgen clicks, the criteo format) whose embeddings live in psd's sparse
table, trained by the workers psrun starts from clicks_fm_torch.yaml
(worker.command). No worker holds the table: per batch a worker hashes its
rows' features to 64-bit keys, pulls the rows of the batch's unique keys
(a weight and 8 factors each), lets autograd compute the loss's gradient
with respect to those rows, and pushes it back by key; psd applies it with
the job's optimizer (per-coordinate, as for the built-in fm). The bias is
θ's one dense float.

    psrun clicks_fm_torch.yaml       # make the data first: the yaml's first line

A feature is (field, value); integer fields are bucketed by the log of the
value as psworker buckets them, and each feature's key is the first 8
bytes of its BLAKE2b hash (Python's own: these keys are this script's, not
psworker's XXH3 ones — the table only needs every worker to agree).
--train-limit N trains on the first N rows; --min-auc A exits 1 when rank
0's final test AUC is below A (also from psrun: PSD_FM_ARGS)."""
import argparse
import hashlib
import math
import os
import shlex
import sys
import time

import numpy as np
import torch
import yaml

FIELDS = 39  # 13 integer fields, then 26 categorical ones
NONE = np.uint64(0)  # a missing field: no key (a hash of 0 is not expected)


class Hasher:
    """Keys of (field, value) pairs, remembered per field (click logs
    repeat their values)."""

    def __init__(self):
        self.seen = [dict() for _ in range(FIELDS)]

    @staticmethod
    def bucket(text):
        v = int(text)
        if v < 0:
            return "neg"
        return str(v) if v <= 2 else f"b{int(math.log(v) ** 2)}"

    def key(self, field, text):
        memo = self.seen[field]
        k = memo.get(text)
        if k is None:
            value = self.bucket(text) if field < 13 else text
            digest = hashlib.blake2b(f"{field}\t{value}".encode(), digest_size=8).digest()
            k = memo[text] = int.from_bytes(digest, "little") or 1
        return k


def read_rows(path, hasher, rank=0, workers=1, limit=None):
    """Labels and a rows × FIELDS array of keys (0: missing) of every
    workers-th line from rank on, of the first `limit` lines."""
    labels, keys = [], []
    with open(path) as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            if i % workers != rank:
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != FIELDS + 1:
                sys.exit(f"clicks_fm_torch: {path}:{i + 1}: expected {FIELDS + 1} tab-separated "
                         f"fields, found {len(parts)}")
            labels.append(float(parts[0]))
            keys.append([hasher.key(j, t) if t else 0 for j, t in enumerate(parts[1:])])
    return np.array(labels, np.float32), np.array(keys, np.uint64).reshape(-1, FIELDS)


def fm_logits(rows, inverse, present, bias):
    """Logits of a batch: rows (unique keys × (1 + factors)), inverse
    (batch × FIELDS indices into rows), present (batch × FIELDS, 1 or 0)."""
    e = rows[inverse] * present[:, :, None]       # each feature's row, 0 when missing
    w, v = e[:, :, 0], e[:, :, 1:]
    s = v.sum(dim=1)
    pairs = 0.5 * ((s * s).sum(dim=1) - (v * v).sum(dim=(1, 2)))
    return bias + w.sum(dim=1) + pairs


def batch_keys(keys):
    """The batch's sorted unique keys, each feature's index into them, and
    which features are present."""
    present = keys != NONE
    uniq, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(keys.shape)
    if len(uniq) and uniq[0] == NONE:  # the missing fields' 0 is no key
        uniq, inverse = uniq[1:], np.maximum(inverse - 1, 0)
    return uniq, inverse, present


def auc(scores, labels):
    """ROC AUC by ranks, ties counted half."""
    order = np.argsort(scores, kind="mergesort")
    s, y = scores[order], labels[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    pos = y > 0.5
    npos, nneg = int(pos.sum()), int((~pos).sum())
    return (ranks[pos].sum() - npos * (npos + 1) / 2) / (npos * nneg)


def evaluate(c, table, keys, labels, bias, chunk=8192):
    """Test AUC and log-loss of the model in psd (rows pulled by key)."""
    probs = np.empty(len(labels), np.float64)
    with torch.no_grad():
        for lo in range(0, len(labels), chunk):
            uniq, inverse, present = batch_keys(keys[lo:lo + chunk])
            rows = torch.from_numpy(c.pull_rows(table, uniq))
            z = fm_logits(rows, torch.from_numpy(inverse), torch.from_numpy(present.astype(np.float32)),
                          float(bias))
            probs[lo:lo + chunk] = torch.sigmoid(z).double().numpy()
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    return auc(probs, labels), float(loss)


def log(rank, text):
    print(f"clicks_fm_torch w{rank}: {text}", flush=True)


def train(a, job_path):
    import psd
    torch.set_num_threads(1)  # psrun runs a worker per core
    with open(job_path) as f:
        job = yaml.safe_load(f)
    folder = os.path.dirname(os.path.abspath(job_path))
    data = {k: os.path.join(folder, job["data"][k]) for k in ("train", "test")}
    B = job["training"]["batch_size"]
    with psd.Client(job_path) as c:
        rank, W = c.rank, c.num_workers
        table = "v"
        hasher = Hasher()
        t0 = time.monotonic()
        y, keys = read_rows(data["train"], hasher, rank, W, a.train_limit)
        yt, kt = read_rows(data["test"], hasher) if rank == 0 else (None, None)
        log(rank, f"read {len(y)} training rows{'' if kt is None else f' and {len(yt)} test rows'} "
                  f"in {time.monotonic() - t0:.1f} s")
        theta = c.pull()  # the bias
        gb = np.zeros(1, np.float32)
        rng = np.random.default_rng(job["training"].get("seed", 7) * 1000 + rank)
        epochs = a.epochs or job["training"]["epochs"]
        t_train = time.monotonic()
        for e in range(epochs):
            t1 = time.monotonic()
            order = rng.permutation(len(y))
            total = 0.0
            for lo in range(0, len(y), B):
                idx = order[lo:lo + B]
                uniq, inverse, present = batch_keys(keys[idx])
                rows = torch.from_numpy(c.pull_rows(table, uniq)).requires_grad_()
                bias = torch.tensor(float(theta[0]), requires_grad=True)
                z = fm_logits(rows, torch.from_numpy(inverse),
                              torch.from_numpy(present.astype(np.float32)), bias)
                target = torch.from_numpy(y[idx])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(z, target,
                                                                            reduction="sum")
                loss.backward()
                total += float(loss)
                # the rows' gradients as sums over the batch (per-coordinate optimizers
                # take a key's examples as they come), the bias's as a mean
                c.push_rows(table, uniq, rows.grad.numpy(), samples=len(idx))
                gb[0] = float(bias.grad) / len(idx)
                c.push_pull(gb, samples=len(idx), out=theta)
            c.report(total / len(y), len(y) / (time.monotonic() - t1))
            log(rank, f"epoch {e + 1}/{epochs}: loss {total / len(y):.4f}, "
                      f"{time.monotonic() - t1:.1f} s")
        train_s = time.monotonic() - t_train
        c.done()
        c.pull_final(out=theta)
        if rank == 0:
            a_test, l_test = evaluate(c, table, kt, yt, theta[0])
            log(rank, f"done: test auc {a_test:.4f}, log-loss {l_test:.4f}, {len(y) * W / train_s:.0f} "
                      f"examples/s for the {W} workers' training, {train_s:.1f} s")
            if a.min_auc and a_test < a.min_auc:
                sys.exit(f"clicks_fm_torch: test AUC {a_test:.4f} is below {a.min_auc}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--job", default=os.environ.get("PSD_JOB") or
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "clicks_fm_torch.yaml"))
    p.add_argument("--train-limit", type=int, help="train on the first N rows only")
    p.add_argument("--epochs", type=int, help="epochs (default: the job's)")
    p.add_argument("--min-auc", type=float, help="exit 1 below this final test AUC")
    a = p.parse_args(sys.argv[1:] + shlex.split(os.environ.get("PSD_FM_ARGS", "")))
    train(a, a.job)


if __name__ == "__main__":
    main()
