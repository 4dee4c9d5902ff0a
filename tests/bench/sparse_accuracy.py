"""sparse_accuracy.py — the accuracy targets of the sparse models (issue 20)
on a generated click log of 2 M training and 200 k test rows (psgen clicks
--seed 7, the command on the first line of config/examples/clicks_*.yaml),
each figure printed beside its reference, measured in the same run:

- liblinear (`train -s 0 -B 1`, L2-regularised logistic regression, the
  bias a feature) on exactly the hashed keys psworker trains on (`psgen
  libsvm`), for a grid of C (0.01 to 1: on this log the best is 0.03,
  inside it); the reference is the best C's test AUC and log-loss. The
  best C is picked on the test set itself, so the reference is an
  optimistic one: no held-out choice could do better;
- the best achievable AUC and log-loss: the generator's true click
  probabilities (.test.prob) scored against the test labels;
- psd: clicks_logistic.yaml (sparse_logistic, FTRL) and clicks_fm.yaml (fm)
  each in sync and async mode, 2 psd shards and 2 psworkers on 127.0.0.1 on
  free ports, the test AUC and log-loss from rank 0's --summary-json (both
  workers score the final model on the whole test set: the same figures);
  and clicks_logistic.yaml in sync mode with sparse.min_count: 3, its
  tables' rows (psctl status --json, summed over the shards) beside those
  of min_count 1.

The targets it prints each figure against: sparse_logistic within 0.005
AUC of liblinear; fm at least 0.01 AUC above sparse_logistic and within
0.02 of the best achievable; the same in async mode, async within 0.005 AUC
of sync; min_count 3 storing fewer than half the rows of min_count 1 for at
most 0.003 AUC. It reports; it asserts nothing, and exits 0 once it has
printed its table (2: usage, or liblinear-tools missing).

Run by hand, never by ctest, from the source tree with Debian's Python
(numpy):

    /usr/bin/python3 tests/bench/sparse_accuracy.py build

On an idle 2-core machine liblinear takes about 4 minutes (the conversion
8 s, each of the 5 values of C 30-60 s and 1.7 GB) and each of the 5 psd
jobs 30-60 s: about 8 minutes in all, 20 with --repeat 3. Files go to
BUILD/sparse_accuracy/ (--work): the click log, unless
config/examples/data/clicks.* holds it already (the examples' own files,
reused), the liblinear files, reused while newer than the log, and one
folder per psd run with its job file, logs and summaries.
--repeat N runs each psd job N times and prints medians; --only liblinear
or --only psd runs one half; --c 0.1,1 another grid of C.

Needs: BUILD/bin/psgen, psd, psworker and psctl; Debian's liblinear-tools
(liblinear-train and liblinear-predict; `train` and `predict` elsewhere).
A psworker without the sparse models (`psworker --describe` refuses the
example jobs) skips the psd part, saying so, and prints the rest."""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
from harness import free_port, run, wait_for  # noqa: E402

EXAMPLES = os.path.join(SOURCE, "config", "examples")
ROWS, TEST_ROWS, SEED = 2000000, 200000, 7
PREFIX = "clicks"


def say(text):
    print(f"sparse_accuracy: {text}", flush=True)


# ---- metrics ---------------------------------------------------------------
# numpy only (Debian's python3-numpy; scikit-learn is not needed): the same
# figures as sklearn's roc_auc_score and log_loss.

def auc(labels, scores):
    """Exact ROC AUC: tied scores share their mean rank (a tied positive and
    negative count half a pair), as common/auc.c and sklearn count them."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[first, len(s)])
    ranks = np.repeat(first + (sizes + 1) / 2.0, sizes)  # 1-based mean ranks
    pos = y.sum()
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def log_loss(labels, probs):
    """Mean negative log-likelihood, p clipped to [1e-15, 1 - 1e-15]."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# ---- the click log ---------------------------------------------------------

def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 24)
            if not chunk:
                return n
            n += chunk.count(b"\n")


def click_log(build, work):
    """The prefix of the 2M/200k seed-7 log: the examples' files when they
    are that log (psgen writes the same bytes for the same arguments, so the
    row counts tell), else work/data/clicks, made with psgen when missing."""
    for prefix in (os.path.join(EXAMPLES, "data", PREFIX), os.path.join(work, "data", PREFIX)):
        files = [prefix + s for s in (".train.tsv", ".test.tsv", ".test.prob")]
        if all(os.path.exists(f) for f in files) and \
                count_lines(files[2]) == TEST_ROWS and count_lines(files[0]) == ROWS:
            say(f"reusing the click log {prefix}.*")
            return prefix
    cmd = [os.path.join(build, "bin", "psgen"), "clicks", "--rows", str(ROWS), "--test-rows",
           str(TEST_ROWS), "--seed", str(SEED), "--out", prefix]
    say("generating the click log: " + " ".join(cmd))
    code, out, err = run(cmd, 600)
    if code != 0:
        sys.exit(f"sparse_accuracy: psgen clicks failed (exit {code}): {err.strip()}")
    print(out.strip())
    return prefix


def test_labels(prefix):
    with open(prefix + ".test.tsv", "rb") as f:
        return np.array([line[:1] == b"1" for line in f], dtype=np.int8)


# ---- liblinear -------------------------------------------------------------

def liblinear_tools():
    """(train, predict): Debian's liblinear-train and liblinear-predict, or
    train and predict when they are liblinear's."""
    t, p = shutil.which("liblinear-train"), shutil.which("liblinear-predict")
    if t and p:
        return t, p
    t, p = shutil.which("train"), shutil.which("predict")
    if t and p:
        _, out, err = run([t], 10)
        if "liblinear" in (out + err).lower() or "-s type : set type of solver" in out + err:
            return t, p
    return None, None


def convert(build, prefix, work):
    """The two liblinear files (train first: the test shares its numbers)
    and psgen libsvm's lines; reused while newer than the log."""
    out_dir = os.path.join(work, "liblinear")
    names = [os.path.basename(prefix) + s for s in (".train.tsv", ".test.tsv")]
    outs = [os.path.join(out_dir, n + ".liblinear") for n in names]
    log = os.path.join(out_dir, "psgen.log")
    newest = max(os.path.getmtime(prefix + s) for s in (".train.tsv", ".test.tsv"))
    if all(os.path.exists(f) and os.path.getmtime(f) > newest for f in outs + [log]):
        say(f"reusing {out_dir}/*.liblinear")
        with open(log) as f:
            return outs, f.read()
    cmd = [os.path.join(build, "bin", "psgen"), "libsvm", "--format", "criteo", "--out-dir",
           out_dir, prefix + ".train.tsv", prefix + ".test.tsv"]
    say("converting: " + " ".join(cmd))
    code, out, err = run(cmd, 1200)
    if code != 0:
        sys.exit(f"sparse_accuracy: psgen libsvm failed (exit {code}): {err.strip()}")
    print(out.strip())
    with open(log, "w") as f:
        f.write(out)
    return outs, out


def predict_file(path):
    """P(label 1) of each row of `predict -b 1` output: liblinear heads it
    "labels 0 1" or "labels 1 0", the classes in the order the training
    file first gave them."""
    with open(path) as f:
        head = f.readline().split()
        if head[:1] != ["labels"] or "1" not in head:
            sys.exit(f"sparse_accuracy: {path}: no 'labels ... 1 ...' header: {head}")
        col = head.index("1")  # column 0 is the predicted label
        return np.loadtxt(f, usecols=(col,))


def liblinear(build, prefix, work, grid, labels):
    train, predict = liblinear_tools()
    if train is None:
        print("sparse_accuracy: liblinear is not installed; on Debian or Ubuntu:\n"
              "  sudo apt-get install liblinear-tools", file=sys.stderr)
        sys.exit(2)
    (train_ll, test_ll), lines = convert(build, prefix, work)
    keys = re.findall(r"wrote \S+ \((\d+) rows, .*?(\d+) features, (\d+) distinct keys, (\d+) new",
                      lines)
    results = []
    for c in grid:
        model = os.path.join(work, "liblinear", f"model.C{c}")
        pred = os.path.join(work, "liblinear", f"predict.C{c}")
        t0 = time.monotonic()
        code, _, err = run([train, "-s", "0", "-B", "1", "-c", str(c), "-q", train_ll, model],
                           3600)
        dt = time.monotonic() - t0
        if code != 0:
            sys.exit(f"sparse_accuracy: {train} -c {c} failed (exit {code}): {err.strip()}")
        code, _, err = run([predict, "-b", "1", test_ll, model, pred], 600)
        if code != 0:
            sys.exit(f"sparse_accuracy: {predict} -c {c} failed (exit {code}): {err.strip()}")
        p = predict_file(pred)
        r = {"c": c, "auc": auc(labels, p), "logloss": log_loss(labels, p), "seconds": dt}
        say(f"liblinear C={c}: test AUC {r['auc']:.4f}, log-loss {r['logloss']:.4f}, "
            f"trained in {dt:.1f} s")
        results.append(r)
    return results, keys


# ---- psd -------------------------------------------------------------------

def job_text(example, prefix, mode, extra=""):
    """The example job on free loopback ports in mode, reading the log at
    prefix, writing nothing but what the run asks for."""
    with open(os.path.join(EXAMPLES, example)) as f:
        text = f.read()
    servers = ", ".join(f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    text = re.sub(r"(?m)^servers: .*$", f"servers: [{servers}]", text)
    text = re.sub(r"(?m)^mode: .*$", f"mode: {mode}", text)
    text = re.sub(r"(?m)^workers: .*$", "workers: 2", text)
    text = re.sub(r"(?m)^output: .*$", "", text)
    text = re.sub(r"(?m)^(  train: ).*$", r"\g<1>" + prefix + ".train.tsv", text)
    text = re.sub(r"(?m)^(  test: ).*$", r"\g<1>" + prefix + ".test.tsv", text)
    return text + extra


def describe_refusal(build, example):
    """psworker's refusal of the example job, or None when it takes it."""
    code, _, err = run([os.path.join(build, "bin", "psworker"), "--config",
                        os.path.join(EXAMPLES, example), "--describe"], 30)
    return None if code == 0 else (err.strip() or f"exit {code}")


def psd_run(build, work, name, text, timeout_s):
    """One job: 2 psd shards and 2 psworkers, every process killed by PID
    at the end. Returns {"auc", "logloss", "rows", "seconds"} or None (said
    why, with the logs' last lines)."""
    folder = os.path.join(work, "runs", name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    job = os.path.join(folder, "job.yaml")
    with open(job, "w") as f:
        f.write(text)
    procs, logs = [], []

    def start(tag, cmd):
        log = open(os.path.join(folder, tag + ".log"), "w")
        logs.append(log)
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append((tag, p))
        return p

    def tail(tag):
        with open(os.path.join(folder, tag + ".log"), errors="replace") as f:
            return "\n".join(f"  [{tag}] {l}" for l in f.read().splitlines()[-6:])

    def text_of(tag):
        with open(os.path.join(folder, tag + ".log"), errors="replace") as f:
            return f.read()

    bin_ = os.path.join(build, "bin")
    try:
        for i in range(2):
            start(f"psd{i}", [os.path.join(bin_, "psd"), "--config", job, "--shard", str(i)])
        for i in range(2):
            if not wait_for(lambda: "listening on" in text_of(f"psd{i}"), 30, f"psd{i}"):
                say(f"{name}: psd{i} did not listen\n{tail(f'psd{i}')}")
                return None
        t0 = time.monotonic()
        workers = [start(f"w{r}", [os.path.join(bin_, "psworker"), "--config", job, "--rank",
                                   str(r), "--summary-json",
                                   os.path.join(folder, f"summary.{r}.json")])
                   for r in range(2)]
        for r, w in enumerate(workers):
            try:
                code = w.wait(timeout=max(1.0, timeout_s - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                say(f"{name}: worker {r} still running after {timeout_s} s\n{tail(f'w{r}')}")
                return None
            if code != 0:
                say(f"{name}: worker {r} exited {code}\n{tail(f'w{r}')}")
                return None
        seconds = time.monotonic() - t0
        # the tables' rows, asked before the shards stop
        code, out, err = run([os.path.join(bin_, "psctl"), "--config", job, "--timeout-ms",
                              "10000", "--json", "status"], 60)
        rows = None
        if code == 0:
            status = json.loads(out)
            rows = {}
            for s in status["shards"]:
                for t in s.get("tables") or []:
                    rows[t["name"]] = rows.get(t["name"], 0) + t["rows"]
        else:
            say(f"{name}: psctl status failed (exit {code}): {err.strip()}")
        with open(os.path.join(folder, "summary.0.json")) as f:
            s = json.load(f)
        return {"auc": s["test_auc"]["value"], "logloss": s["test_loss"]["value"],
                "rows": rows, "seconds": seconds}
    finally:
        for tag, p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for tag, p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


def median_run(build, work, name, text, repeat, timeout_s):
    """The medians of repeat runs (None when any failed)."""
    runs = []
    for i in range(repeat):
        tag = name if repeat == 1 else f"{name}.{i + 1}"
        say(f"running {tag}")
        r = psd_run(build, work, tag, text, timeout_s)
        if r is None:
            return None
        rows = sum(r["rows"].values()) if r["rows"] else float("nan")
        say(f"{tag}: test AUC {r['auc']:.4f}, log-loss {r['logloss']:.4f}, {rows} table rows, "
            f"{r['seconds']:.1f} s")
        runs.append(r)
    out = {k: statistics.median(r[k] for r in runs) for k in ("auc", "logloss", "seconds")}
    out["rows"] = statistics.median(sum(r["rows"].values()) if r["rows"] else float("nan")
                                    for r in runs)
    out["n"] = repeat
    return out


# ---- the table -------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", help="the build folder (its bin/ holds psgen, psd, psworker, psctl)")
    ap.add_argument("--work", help="where files go (default: BUILD/sparse_accuracy)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each psd job (medians)")
    ap.add_argument("--only", choices=("liblinear", "psd"), help="run one half")
    ap.add_argument("--c", default="0.01,0.03,0.1,0.3,1", help="liblinear's grid of C")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds a psd job may take")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = os.path.abspath(a.work or os.path.join(build, "sparse_accuracy"))
    os.makedirs(work, exist_ok=True)
    grid = [float(c) if "." in c else int(c) for c in a.c.split(",")]

    prefix = click_log(build, work)
    labels = test_labels(prefix)
    probs = np.loadtxt(prefix + ".test.prob")
    best = {"auc": auc(labels, probs), "logloss": log_loss(labels, probs)}
    say(f"best achievable: test AUC {best['auc']:.4f}, log-loss {best['logloss']:.4f}")

    ll, keys = (None, [])
    if a.only != "psd":
        results, keys = liblinear(build, prefix, work, grid, labels)
        ll = max(results, key=lambda r: r["auc"])

    runs = {}
    skipped = None
    if a.only != "liblinear":
        skipped = describe_refusal(build, "clicks_logistic.yaml") or \
            describe_refusal(build, "clicks_fm.yaml")
        if skipped:
            say(f"psd part skipped: psworker refuses the example jobs: {skipped}")
        else:
            plan = [("logistic sync", "clicks_logistic.yaml", "sync", ""),
                    ("logistic async", "clicks_logistic.yaml", "async", ""),
                    ("fm sync", "clicks_fm.yaml", "sync", ""),
                    ("fm async", "clicks_fm.yaml", "async", ""),
                    ("logistic sync min_count 3", "clicks_logistic.yaml", "sync",
                     "\nsparse:\n  min_count: 3\n")]
            for name, example, mode, extra in plan:
                runs[name] = median_run(build, work, name.replace(" ", "_"),
                                        job_text(example, prefix, mode, extra), a.repeat,
                                        a.timeout)

    # ---- report ----
    print()
    print(f"click log {prefix}.*: {len(labels)} test rows, {labels.mean() * 100:.1f}% positive")
    if len(keys) == 2:
        print(f"distinct keys: train {int(keys[0][2])} ({int(keys[0][1])} features in "
              f"{int(keys[0][0])} rows), test {int(keys[1][2])}, of which {int(keys[1][3])} "
              f"not in train (liblinear's predict ignores them; psworker has no trained weight "
              f"for them)")
    print(f"best achievable (true probabilities): AUC {best['auc']:.4f}, "
          f"log-loss {best['logloss']:.4f}")
    if ll is not None:
        print("liblinear -s 0 -B 1 (L2 logistic regression, the bias a feature), by C:")
        for r in results:
            mark = "  <- best on the test set: the reference (optimistic)" if r is ll else ""
            print(f"  C={r['c']:<5} AUC {r['auc']:.4f}  log-loss {r['logloss']:.4f}  "
                  f"train {r['seconds']:.1f} s{mark}")
    if skipped:
        print(f"psd: not run ({skipped})")
    if not runs:
        return 0
    reps = f" (medians of {a.repeat})" if a.repeat > 1 else ""
    print(f"\npsd, 2 shards and 2 workers{reps}:")

    def fig(name, what="auc"):
        r = runs.get(name)
        return None if r is None else r[what]

    def line(label, value, ref_label, ref, target, met):
        if value is None or ref is None:
            print(f"  {label}: not measured ({ref_label})")
            return
        verdict = "met" if met(value, ref) else "NOT met"
        print(f"  {label}: {value:.4f}, {ref_label} {ref:.4f} (diff {value - ref:+.4f}; target "
              f"{target}: {verdict})")

    for name in runs:
        r = runs[name]
        if r is None:
            print(f"  {name}: failed (logs in {work}/runs/)")
        else:
            print(f"  {name}: AUC {r['auc']:.4f}, log-loss {r['logloss']:.4f}, "
                  f"{r['rows']:.0f} table rows, {r['seconds']:.1f} s")
    print()
    for mode in ("sync", "async"):
        lg, fm = fig(f"logistic {mode}"), fig(f"fm {mode}")
        line(f"sparse_logistic {mode} FTRL AUC", lg, f"liblinear best C {ll['c']}" if ll else
             "liblinear", ll["auc"] if ll else None, "within 0.005",
             lambda v, r: abs(v - r) <= 0.005 or v > r)
        if ll is not None and fig(f"logistic {mode}", "logloss") is not None:
            print(f"  sparse_logistic {mode} log-loss: {fig(f'logistic {mode}', 'logloss'):.4f}, "
                  f"liblinear {ll['logloss']:.4f}")
        line(f"fm {mode} AUC", fm, f"sparse_logistic {mode}", lg, "at least +0.01",
             lambda v, r: v - r >= 0.01)
        line(f"fm {mode} AUC", fm, "best achievable", best["auc"], "within 0.02",
             lambda v, r: r - v <= 0.02)
        if mode == "async":
            for model in ("logistic", "fm"):
                line(f"{model} async AUC", fig(f"{model} async"), f"{model} sync",
                     fig(f"{model} sync"), "within 0.005", lambda v, r: abs(v - r) <= 0.005)
    m3, m1 = runs.get("logistic sync min_count 3"), runs.get("logistic sync")
    if m3 and m1:
        ratio = m3["rows"] / m1["rows"] if m1["rows"] else float("nan")
        print(f"  min_count 3 table rows: {m3['rows']:.0f}, min_count 1 {m1['rows']:.0f} "
              f"(ratio {ratio:.3f}; target below 0.5: {'met' if ratio < 0.5 else 'NOT met'})")
        line("min_count 3 AUC", m3["auc"], "min_count 1", m1["auc"], "at most 0.003 lower",
             lambda v, r: r - v <= 0.003)
    return 0


if __name__ == "__main__":
    sys.exit(main())
