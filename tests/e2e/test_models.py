"""test_models.py — psrun matches scikit-learn's accuracy with 2 workers in
sync and in async mode: breast_cancer logistic regression >= 0.955
(scikit-learn 0.9649) and digits softmax regression >= 0.95 (0.9611); the
binary classifier reports a test AUC (>= 0.99) and softmax none at all; the
digits written as IDX files (gzip, labels found from the standard names)
train to exactly the accuracy of the same rows read from CSV."""
import gzip
import os
import struct

from harness import Env, model_job_yaml, no_leftovers, psrun, write

env = Env()


def data(name, part):
    return os.path.join(env.data, f"{name}.{part}.csv")


cases = [
    ("bc-logistic", "breast_cancer", dict(model="logistic", features=30), 0.955),
    ("digits-softmax", "digits", dict(model="softmax", features=64, classes=10), 0.95),
]
accuracy = {}
for name, dataset, kw, floor in cases:
    for mode in ("sync", "async"):
        job = write(env, f"{name}-{mode}.yaml",
                    model_job_yaml(f"{name}-{mode}", data(dataset, "train"), data(dataset, "test"),
                                   mode=mode, **kw))
        code, summary, err = psrun(env, job)
        env.check(code == 0, f"{name} {mode}: psrun exits 0")
        env.check(summary is not None, f"{name} {mode}: psrun wrote its summary")
        if summary is not None:
            metric = summary["test_metric"]
            env.check(metric["name"] == "accuracy", f"{name} {mode}: test metric is accuracy")
            env.check(metric["value"] >= floor,
                      f"{name} {mode}: test accuracy {metric['value']:.4f} >= {floor}")
            loss = summary["test_loss"]
            env.check(loss["name"] == "log_loss" and 0 < loss["value"] < 0.3,
                      f"{name} {mode}: test log-loss {loss['value']:.4f} in (0, 0.3)")
            env.check(summary["metrics"]["log_loss"] == loss["value"],
                      f"{name} {mode}: metrics carry the test log-loss")
            accuracy[(name, mode)] = metric["value"]
            if kw["model"] == "logistic":
                auc = summary.get("test_auc") or {}
                env.check(auc.get("name") == "auc" and 0.99 <= auc.get("value", -1) <= 1.0,
                          f"{name} {mode}: test auc {auc.get('value')} in [0.99, 1]")
            else:
                keys = [k for k in summary if "auc" in k] + [k for k in summary["metrics"]
                                                             if "auc" in k]
                keys += [k for c in summary["curves"] for k in c if "auc" in k]
                env.check(keys == [], f"{name} {mode}: softmax has no auc anywhere ({keys})")
        env.check(f"test accuracy" in err and "test log-loss" in err,
                  f"{name} {mode}: the epoch lines show test accuracy and log-loss")
        env.check(("test auc" in err) == (kw["model"] == "logistic"),
                  f"{name} {mode}: the epoch lines show a test auc for the binary model only")
        no_leftovers(env, job)


def write_idx(path, magic, dims, payload):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims))
        f.write(bytes(payload))


# digits as 8 x 8 IDX images: its pixels are whole numbers 0..16, so the rows
# are the same as the CSV's; with 2 workers a sync run is deterministic
for part, stem in (("train", "train"), ("test", "t10k")):
    rows = [[int(float(v)) for v in line.split(",")]
            for line in open(data("digits", part)).read().split()]
    write_idx(os.path.join(env.tmp, f"{stem}-images-idx3-ubyte.gz"), 0x803, (len(rows), 8, 8),
              [v for r in rows for v in r[1:]])
    write_idx(os.path.join(env.tmp, f"{stem}-labels-idx1-ubyte.gz"), 0x801, (len(rows),),
              [r[0] for r in rows])
job = write(env, "digits-idx.yaml",
            model_job_yaml("digits-idx", os.path.join(env.tmp, "train-images-idx3-ubyte.gz"),
                           os.path.join(env.tmp, "t10k-images-idx3-ubyte.gz"), model="softmax",
                           features=64, classes=10, fmt="idx"))
code, summary, err = psrun(env, job)
env.check(code == 0, "digits from IDX: psrun exits 0")
env.check(summary is not None, "digits from IDX: psrun wrote its summary")
got = summary["test_metric"]["value"] if summary else -1.0
want = accuracy.get(("digits-softmax", "sync"), -2.0)
env.check(got == want, f"digits from IDX: test accuracy {got:.4f} == {want:.4f} from CSV")
no_leftovers(env, job)

# a label outside the classes names the file and line
rows = open(data("digits", "train")).read().splitlines()
rows[4] = "11" + rows[4][rows[4].index(","):]
bad = write(env, "bad-label.csv", "\n".join(rows) + "\n")
job = write(env, "bad-label.yaml",
            model_job_yaml("bad-label", bad, data("digits", "test"), model="softmax", features=64,
                           classes=10))
code, _, err = psrun(env, job, timeout_s=60)
env.check(code == 1, "label 11 of 10 classes: psrun exits 1")
env.check(f"{bad}:5: label 11 is outside 0..9" in err,
          "label 11 of 10 classes: the error is file:line: label 11 is outside 0..9")
no_leftovers(env, job)
env.finish()
