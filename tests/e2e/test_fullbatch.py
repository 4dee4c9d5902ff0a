"""test_fullbatch.py — sync mode with 2 workers, each using its whole shard
as the batch, gives after 20 rounds the same θ (max abs difference <= 1e-5)
as single-process full-batch gradient descent over the same data with the
same learning rate, computed here in float64 with numpy."""
import os

import numpy as np

from harness import Env, job_yaml, no_leftovers, psrun, write

env = Env()


def reference(lr, rounds):
    train = np.loadtxt(os.path.join(env.data, "breast_cancer.train.csv"), delimiter=",")
    y, x = train[:, 0], train[:, 1:]
    std = x.std(axis=0)
    std[std == 0] = 1.0
    x = (x - x.mean(axis=0)) / std
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(rounds):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        r = p - y
        w -= lr * (x.T @ r) / len(y)
        b -= lr * r.mean()
    return w, b


w_ref, b_ref = reference(0.1, 20)
for shards in (1, 2):
    out = os.path.join(env.tmp, f"out-{shards}")
    job = write(env, f"fullbatch-{shards}.yaml",
                job_yaml(env, f"fullbatch-{shards}", mode="sync", shards=shards, epochs=20,
                         batch_size=100000, lr=0.1, init="zeros", output=out))
    code, summary, _ = psrun(env, job)
    env.check(code == 0, f"{shards} shard(s): psrun exits 0")
    if code == 0:
        env.check(summary["version"] == 20, f"{shards} shard(s): 20 rounds (version {summary['version']})")
        w = np.load(os.path.join(out, "w.npy"))
        b = np.load(os.path.join(out, "b.npy"))
        env.check(w.dtype == np.float32 and w.shape == (30,) and b.shape == (1,),
                  f"{shards} shard(s): w.npy float32 (30,), b.npy (1,)")
        diff = max(np.abs(w - w_ref).max(), abs(float(b[0]) - b_ref))
        print(f"max |theta - theta_ref| = {diff:.3g}, max |theta_ref| = {np.abs(w_ref).max():.3g}")
        env.check(diff <= 1e-5, f"{shards} shard(s): max abs difference {diff:.3g} <= 1e-5")
    no_leftovers(env, job)
env.finish()
