"""test_npy.py — the final model psrun writes is one .npy per tensor plus a
manifest; numpy loads them, scores the test set itself (standardised with
the training set's statistics, as psworker does) and counts exactly the
correct predictions behind the accuracy psrun reported: softmax regression
and a two-hidden-layer MLP on digits, logistic regression on breast_cancer,
whose AUC numpy counts as well, pair by pair.
The MLP, trained again with shared_memory: false (every byte over the
socket), writes the same model bit for bit as through shared memory."""
import json
import os

import numpy as np

from harness import Env, model_job_yaml, no_leftovers, psrun, write

env = Env()


def load(name, part):
    a = np.loadtxt(os.path.join(env.data, f"{name}.{part}.csv"), delimiter=",", dtype=np.float32)
    return a[:, 1:], a[:, 0].astype(np.int64)


def standardise(train, x):
    """psworker's rule: float64 statistics of the float32 training set (ddof 0),
    (x - mean) / std rounded to float32; a constant feature is only centred."""
    t = train.astype(np.float64)
    mean, std = t.mean(axis=0), t.std(axis=0)
    std[~(std > 0)] = 1.0
    return ((x.astype(np.float64) - mean) / std).astype(np.float32)


cases = [
    ("digits-softmax", "digits", dict(model="softmax", features=64, classes=10),
     ["W", "b"]),
    ("digits-mlp", "digits", dict(model="mlp", features=64, classes=10, hidden=[32, 16], lr=0.05),
     ["W1", "b1", "W2", "b2", "W3", "b3"]),
    ("bc-logistic", "breast_cancer", dict(model="logistic", features=30), ["w", "b"]),
]
cases.append(("digits-mlp-socket", "digits", dict(cases[1][2], extra="shared_memory: false\n"),
              cases[1][3]))
models = {}
for name, dataset, kw, names in cases:
    out = os.path.join(env.tmp, f"out-{name}")
    job = write(env, f"{name}.yaml",
                model_job_yaml(name, os.path.join(env.data, f"{dataset}.train.csv"),
                               os.path.join(env.data, f"{dataset}.test.csv"), output=out, **kw))
    code, summary, _ = psrun(env, job)
    env.check(code == 0, f"{name}: psrun exits 0")
    if not summary:
        continue
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    env.check([t["name"] for t in manifest["tensors"]] == names,
              f"{name}: the manifest lists {names}")
    theta = {t["name"]: np.load(os.path.join(out, t["file"])) for t in manifest["tensors"]}
    env.check(all(list(theta[t["name"]].shape) == t["shape"] and theta[t["name"]].dtype ==
                  np.float32 for t in manifest["tensors"]),
              f"{name}: every .npy is float32 of the manifest's shape")
    models[name] = theta
    xtr, _ = load(dataset, "train")
    xte, yte = load(dataset, "test")
    a = standardise(xtr, xte).astype(np.float64)
    if kw["model"] == "logistic":
        z = a @ theta["w"].astype(np.float64) + theta["b"][0]
        pred = (z >= 0).astype(np.int64)
        # the AUC: positives scoring above negatives, a tie counting half
        pos, neg = z[yte == 1], z[yte == 0]
        twice = int(2 * (pos[:, None] > neg[None, :]).sum() + (pos[:, None] == neg[None, :]).sum())
        auc = summary["test_auc"]["value"]
        env.check(round(auc * 2 * len(pos) * len(neg)) == twice,
                  f"{name}: numpy ranks {twice / 2} of {len(pos) * len(neg)} pairs right, "
                  f"psrun reported auc {auc:.6f}")
    else:
        layers = len(names) // 2
        for l in range(layers):
            w, b = theta[names[2 * l]].astype(np.float64), theta[names[2 * l + 1]]
            a = a @ w + b
            if l + 1 < layers:
                a = np.maximum(a, 0.0)
        pred = a.argmax(axis=1)
    correct = int((pred == yte).sum())
    reported = summary["test_metric"]["value"]
    env.check(correct == round(reported * len(yte)),
              f"{name}: numpy gets {correct}/{len(yte)} right, psrun reported "
              f"{reported:.6f} ({round(reported * len(yte))})")
    env.check(abs(correct / len(yte) - reported) <= 1e-9,
              f"{name}: numpy's accuracy {correct / len(yte):.6f} == psrun's to 1e-9")
    no_leftovers(env, job)
shm, sock = models.get("digits-mlp"), models.get("digits-mlp-socket")
env.check(shm is not None and sock is not None and
          all(np.array_equal(shm[t], sock[t]) for t in shm),
          "digits-mlp: the model over the socket equals the one through shared memory, bit for bit")
env.finish()
