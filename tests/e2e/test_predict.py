"""test_predict.py — psrun predict scores a data file with the model a job's
training wrote, split across 1 and 3 psworker processes, and the rows and
the manifest are checked against what we compute ourselves:

- dense models (logistic on breast_cancer, softmax and a one-hidden-layer
  MLP on digits, linear on a line): numpy's forward pass from the .npy
  files, with the data standardised by the training set's statistics
  (norm_mean.npy / norm_std.npy, checked against numpy's own), gives the
  same class on every row (a row whose top two scores numpy cannot tell
  apart in float32 excepted) and the probabilities (or value) to 1e-5;
  the manifest's accuracy equals the training summary's test accuracy and
  its log-loss / AUC match too.
- sparse models (sparse_logistic and fm on a small psgen click log): their
  keys are XXH3 hashes of the features, which numpy cannot compute, so the
  check is that 1 and 3 workers write the same file byte for byte and that
  the manifest's accuracy, log-loss and AUC are the job's own test figures
  (its summary).
- bad inputs: no model folder, a data file with a wrong column count, a
  corrupt .npy, no --data: one line, exit 1 (2 for usage).
Every process is started under a timeout and none is left behind."""
import json
import os
import shutil

import numpy as np

from harness import Env, free_port, model_job_yaml, no_leftovers, psrun, run, write

env = Env()
tmpdir = os.path.join(env.tmp, "tmpdir")  # psrun predict's own temporary folders
os.makedirs(tmpdir)
run_env = dict(os.environ, TMPDIR=tmpdir)


def predict(job, data, out, workers, extra=()):
    cmd = [env.prog("psrun"), "predict", job, "--data", data, "--output", out,
           "--workers", str(workers), "--timeout", "120", *extra]
    code, stdout, stderr = run(cmd, 150, env=run_env)
    print(f"predict {os.path.basename(job)} --workers {workers}: exit {code}\n{stdout}{stderr}")
    return code, stdout, stderr


def read_preds(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    body = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    return header, body


def load_csv(name, part):
    a = np.loadtxt(os.path.join(env.data, f"{name}.{part}.csv"), delimiter=",", dtype=np.float32)
    return a[:, 1:], a[:, 0]


def standardise(train, x, out):
    """psworker's rule: float64 statistics of the float32 training set (ddof 0),
    (x - mean) / std rounded to float32; a constant feature only centred."""
    t = train.astype(np.float64)
    mean, std = t.mean(axis=0), t.std(axis=0)
    saved_mean = np.load(os.path.join(out, "norm_mean.npy"))
    saved_std = np.load(os.path.join(out, "norm_std.npy"))
    env.check(saved_mean.dtype == np.float64 and np.allclose(saved_mean, mean, rtol=1e-12, atol=1e-12)
              and np.allclose(saved_std, std, rtol=1e-12, atol=1e-12),
              f"{os.path.basename(out)}: norm_mean.npy and norm_std.npy are the training set's")
    std[~(std > 0)] = 1.0
    return ((x.astype(np.float64) - saved_mean) / std).astype(np.float32)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def check_manifest(name, out, workers, rows, data, summary):
    m = json.load(open(out + ".json"))
    model = json.load(open(os.path.join(summary["_out"], "manifest.json")))
    env.check(m["version"] == model["version"] and m["rows"] == rows and m["data"] == data
              and m["workers"] == workers and m["model_dir"] == summary["_out"],
              f"{name} --workers {workers}: the manifest gives version {m['version']} "
              f"(the model's {model['version']}), {m['rows']} rows of {rows}, the input, "
              f"the model folder")
    metrics = m["metrics"]
    if summary["metric_name"] == "r2":
        env.check(abs(metrics["r2"] - summary["test_metric"]["value"]) <= 1e-6,
                  f"{name} --workers {workers}: r2 {metrics['r2']:.6f} is the training's "
                  f"{summary['test_metric']['value']:.6f}")
        return
    acc = summary["test_metric"]["value"]
    env.check(abs(metrics["accuracy"] - acc) <= 1e-12,
              f"{name} --workers {workers}: accuracy {metrics['accuracy']:.6f} is the training "
              f"summary's test accuracy {acc:.6f}")
    env.check(abs(metrics["log_loss"] - summary["test_loss"]["value"]) <= 1e-6,
              f"{name} --workers {workers}: log-loss {metrics['log_loss']:.6f} is the "
              f"training's {summary['test_loss']['value']:.6f} (to 1e-6)")
    if summary.get("test_auc") and summary["test_auc"].get("value") is not None:
        env.check(abs(metrics["auc"] - summary["test_auc"]["value"]) <= 1e-6,
                  f"{name} --workers {workers}: auc {metrics['auc']:.6f} is the training's "
                  f"{summary['test_auc']['value']:.6f}")
    else:
        env.check("auc" not in metrics, f"{name}: a model without an AUC has none in the manifest")


def train(name, text, out):
    job = write(env, f"{name}.yaml", text)
    code, summary, _ = psrun(env, job)
    env.check(code == 0 and summary is not None, f"{name}: psrun trains it (exit {code})")
    no_leftovers(env, job)
    if summary is not None:
        summary["_out"] = out
    return job, summary


# ---- dense models: numpy's forward pass ----
dense = [
    ("bc-logistic", "breast_cancer", dict(model="logistic", features=30, epochs=10)),
    ("digits-softmax", "digits", dict(model="softmax", features=64, classes=10, epochs=10)),
    ("digits-mlp", "digits", dict(model="mlp", features=64, classes=10, hidden=[32], lr=0.05,
                                  epochs=5)),
]
for name, dataset, kw in dense:
    out = os.path.join(env.tmp, f"out-{name}")
    train_csv = os.path.join(env.data, f"{dataset}.train.csv")
    test_csv = os.path.join(env.data, f"{dataset}.test.csv")
    job, summary = train(name, model_job_yaml(name, train_csv, test_csv, output=out, **kw), out)
    if summary is None:
        continue
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    theta = {t["name"]: np.load(os.path.join(out, t["file"])) for t in manifest["tensors"]}
    xtr, _ = load_csv(dataset, "train")
    xte, yte = load_csv(dataset, "test")
    a = standardise(xtr, xte, out).astype(np.float64)
    if kw["model"] == "logistic":
        z = a @ theta["w"].astype(np.float64) + theta["b"][0]
        p1 = 1.0 / (1.0 + np.exp(-z))
        probs = np.stack([1.0 - p1, p1], axis=1)
        cls = (z >= 0).astype(np.int64)
        margin = np.abs(z)
        header = ["class", "p0", "p1"]
    else:
        names = [t["name"] for t in manifest["tensors"]]
        layers = len(names) // 2
        for l in range(layers):
            a = a @ theta[names[2 * l]].astype(np.float64) + theta[names[2 * l + 1]]
            if l + 1 < layers:
                a = np.maximum(a, 0.0)  # the MLP's hidden activation: ReLU
        probs = softmax(a)
        cls = a.argmax(axis=1)
        top2 = np.sort(a, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        header = ["class"] + [f"p{c}" for c in range(kw["classes"])]
    files = {}
    for workers in (1, 3):
        preds = os.path.join(env.tmp, f"{name}.w{workers}.csv")
        code, _, _ = predict(job, test_csv, preds, workers)
        env.check(code == 0, f"{name} --workers {workers}: psrun predict exits 0")
        if code != 0:
            continue
        files[workers] = open(preds).read()
        got_header, body = read_preds(preds)
        env.check(got_header == header, f"{name} --workers {workers}: header {got_header}")
        env.check(body.shape == (len(yte), len(header)),
                  f"{name} --workers {workers}: one row per input row ({body.shape[0]} of "
                  f"{len(yte)})")
        if body.shape != (len(yte), len(header)):
            continue
        differ = body[:, 0].astype(np.int64) != cls
        env.check(not differ.any() or margin[differ].max() < 1e-4,
                  f"{name} --workers {workers}: every row's class is numpy's "
                  f"({int(differ.sum())} differ, each a float32 tie)")
        err = np.abs(body[:, 1:] - probs).max()
        env.check(err <= 1e-5, f"{name} --workers {workers}: probabilities within 1e-5 of "
                  f"numpy's (max difference {err:.2e})")
        check_manifest(name, preds, workers, len(yte), test_csv, summary)
    no_leftovers(env, job)

# ---- linear regression: the value ----
line_out = os.path.join(env.tmp, "out-line")
line_csv = os.path.join(env.data, "line.csv")
line_job, line_summary = train("line", f"""job: line
mode: sync
workers: 1
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: linear, features: 1, init: {{scheme: zeros}}}}
data: {{train: {line_csv}, test: {line_csv}, label_column: 1, normalize: standard}}
optimizer: {{type: sgd, lr: 0.5}}
training: {{epochs: 50, batch_size: 100}}
output: {line_out}
""", line_out)
if line_summary is not None:
    lx = np.loadtxt(line_csv, delimiter=",", dtype=np.float32)
    a = standardise(lx[:, :1], lx[:, :1], line_out).astype(np.float64)
    value = a @ np.load(os.path.join(line_out, "w.npy")).astype(np.float64) + \
        np.load(os.path.join(line_out, "b.npy"))[0]
    for workers in (1, 3):
        preds = os.path.join(env.tmp, f"line.w{workers}.csv")
        code, _, _ = predict(line_job, line_csv, preds, workers)
        env.check(code == 0, f"line --workers {workers}: psrun predict exits 0")
        if code == 0:
            header, body = read_preds(preds)
            env.check(header == ["value"] and body.shape == (len(lx), 1) and
                      np.abs(body[:, 0] - value).max() <= 1e-5,
                      f"line --workers {workers}: the values are numpy's to 1e-5")
            check_manifest("line", preds, workers, len(lx), line_csv, line_summary)

# ---- sparse models: 1 and 3 workers alike, the job's own test figures ----
clicks = os.path.join(env.tmp, "clicks")
code, _, err = run([env.prog("psgen"), "clicks", "--rows", "5000", "--test-rows", "1000",
                    "--seed", "3", "--out", clicks], 60)
env.check(code == 0, f"psgen writes a click log (exit {code}) {err.strip()}")
for model, extra, optim in [
        ("sparse_logistic", "", "{type: ftrl, lr: 0.1, beta: 1, l1: 1, l2: 1}"),
        ("fm", "  factors: 4\n  init: {scheme: normal, seed: 42}\n",
         "{type: ftrl, lr: 0.05, beta: 1, l1: 0.05, l2: 0.3}")]:
    name = f"clicks-{model}"
    out = os.path.join(env.tmp, f"out-{name}")
    job, summary = train(name, f"""job: {name}
mode: sync
workers: 2
servers: [tcp://127.0.0.1:{free_port()}]
model:
  type: {model}
{extra}data: {{train: {clicks}.train.tsv, test: {clicks}.test.tsv, format: criteo}}
optimizer: {optim}
sparse: {{min_count: 3}}
training: {{epochs: 2, batch_size: 256, seed: 7}}
output: {out}
""", out)
    if summary is None:
        continue
    texts = {}
    for workers in (1, 3):
        preds = os.path.join(env.tmp, f"{name}.w{workers}.csv")
        code, _, _ = predict(job, clicks + ".test.tsv", preds, workers)
        env.check(code == 0, f"{name} --workers {workers}: psrun predict exits 0")
        if code != 0:
            continue
        texts[workers] = open(preds).read()
        header, body = read_preds(preds)
        env.check(header == ["class", "p0", "p1"] and body.shape == (1000, 3),
                  f"{name} --workers {workers}: class,p0,p1 for each of the 1000 rows")
        env.check(np.all(body[:, 0] == (body[:, 2] >= 0.5)) and
                  np.abs(body[:, 1] + body[:, 2] - 1).max() < 1e-6,
                  f"{name} --workers {workers}: class is p1 >= 0.5, p0 + p1 = 1")
        check_manifest(name, preds, workers, 1000, clicks + ".test.tsv", summary)
    env.check(len(texts) == 2 and texts[1] == texts[3],
              f"{name}: 1 and 3 workers write the same predictions byte for byte")
    no_leftovers(env, job)

# ---- bad inputs: one line, the exit status ----
bc_job = os.path.join(env.tmp, "bc-logistic.yaml")
bc_test = os.path.join(env.data, "breast_cancer.test.csv")
gone = write(env, "gone.yaml", open(bc_job).read().replace(
    os.path.join(env.tmp, "out-bc-logistic"), os.path.join(env.tmp, "no-such-model")))
code, out, err = predict(gone, bc_test, os.path.join(env.tmp, "gone.csv"), 2)
lines = err.strip().splitlines()
env.check(code == 1 and len(lines) == 1 and "no-such-model" in lines[0]
          and lines[0].startswith("psrun: predict failed:"),
          f"no model folder: exit 1 and one line naming it ({lines})")
env.check(not os.path.exists(os.path.join(env.tmp, "gone.csv")), "no model folder: no output")

short = os.path.join(env.tmp, "short.csv")
with open(bc_test) as f, open(short, "w") as g:
    for i, line in enumerate(f):
        g.write(line if i != 40 else ",".join(line.split(",")[:-1]) + "\n")
code, out, err = predict(bc_job, short, os.path.join(env.tmp, "short.preds.csv"), 3)
lines = err.strip().splitlines()
env.check(code == 1 and len(lines) == 1 and "short.csv:41:" in lines[0],
          f"a row of 30 fields: exit 1 and one line naming file:line ({lines})")
env.check(not os.path.exists(os.path.join(env.tmp, "short.preds.csv")),
          "a bad row: no output, not half of one")

bad_out = os.path.join(env.tmp, "bad-model")
shutil.copytree(os.path.join(env.tmp, "out-bc-logistic"), bad_out)
with open(os.path.join(bad_out, "w.npy"), "r+b") as f:
    f.truncate(100)
code, out, err = predict(bc_job, bc_test, os.path.join(env.tmp, "bad.csv"), 1,
                         ["--model", bad_out])
lines = err.strip().splitlines()
env.check(code == 1 and len(lines) == 1 and "w.npy" in lines[0],
          f"a corrupt w.npy: exit 1 and one line naming it ({lines})")

other = write(env, "other.yaml", open(bc_job).read().replace("job: bc-logistic", "job: other"))
code, out, err = predict(other, bc_test, os.path.join(env.tmp, "other.csv"), 1,
                         ["--model", os.path.join(env.tmp, "out-bc-logistic")])
lines = err.strip().splitlines()
env.check(code == 1 and len(lines) == 1 and "bc-logistic" in lines[0],
          f"a model of another job: exit 1 and one line saying so ({lines})")

code, out, err = run([env.prog("psrun"), "predict", bc_job, "--output", "x.csv"], 30)
env.check(code == 2 and len(err.strip().splitlines()) == 1, f"no --data: exit 2 ({err.strip()})")
env.check(os.listdir(tmpdir) == [], f"psrun predict leaves no temporary files ({os.listdir(tmpdir)})")
env.finish()
