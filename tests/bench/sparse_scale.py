"""sparse_scale.py — "a model no worker could hold" (issue 20): a sparse
job whose tables hold at least 50 M live rows (over 2 GB) trains on
streamed data, each figure printed beside its target:

- the data: a libsvm64 log made here with numpy (worker/sparse_data.h's
  format), by default 2.5 M training rows of 29 features each: 8 common
  fields (vocabularies of 1000 values, a hidden weight each; the label is
  drawn from the logistic of their sum plus a bias, so training learns
  something, and the rule's own AUC on the test rows is printed) and 21 ids
  drawn at random from [2·10^18, 10^19), nearly all of them seen once:
  52.5 M distinct keys. Every id has 19 digits, so every line has the same
  length and a chunk of rows is one numpy byte array: 1.6 GB in 20-40 s on
  a 2-core machine. The test set (50 k rows) has the common fields and
  fresh random ids;
- the job: fm with 8 factors and adagrad (rows of 9 floats and 9
  accumulators: 72 bytes of floats a row), 2 psd shards and 2 psworkers
  with data.stream: true, async, batch 512, 1 epoch, on 127.0.0.1 on free
  ports;
- each psworker's peak RSS against 300 MB: GNU time's %M, the worker's own
  ru_maxrss (a child started from this Python would count this Python's
  pages, which it had until its exec), with the VmHWM polled every 0.25 s
  and its RSS halfway through training beside it;
- each psd's RSS per live row against 1.3 × 72 bytes: its RSS with its
  table full (VmRSS and VmHWM from /proc/PID/status once the workers are
  done, before psd is stopped) less its RSS after it listened and before
  any worker started (the baseline: binary, libraries, sockets, malloc's
  first arena: 9.5 MB), divided by its table's rows (psctl status --json);
  beside it the table's own bytes per row (psctl's "bytes": records,
  liveness bitmaps, index) and psd's five biggest mappings from
  /proc/PID/smaps (copied into the run's folder);
- the same job with sparse.max_rows set to half the keys per shard (the
  first run's live rows / 2 / 2 shards): that it finishes, the rows
  evicted at the cap (psctl's evicted_cap, psd_table_evicted_total{reason=
  "cap"} on /metrics), and each psd's peak RSS (VmHWM), with and without
  the baseline, beside the cap's bytes counted three ways: max_rows × 72 B,
  × 1.3 · 72 B (the per-row budget above) and × the table's own bytes a
  row; its RSS at 1/2 and 3/4 of the run and at the end shows it flat
  once the cap is reached (about halfway: the ids come in random order);
- every time a worker waited over 1 s for a psd ("no answer for" in its
  log, after which it sends again), with that psd's RSS at that moment.

It reports; it asserts nothing, and exits 0 once it has printed its table
(1 when a job failed, with the logs' last lines; 2 on a usage error).
--repeat N runs each job N times and prints medians.

Run by hand, never by ctest, from the source tree with Debian's Python
(numpy) and GNU time (/usr/bin/time, Debian's package time), on a
machine with about 7 GB of memory free (the two psd hold 4.8 GB at 52.5 M
rows) and 2 GB of disk under /tmp:

    /usr/bin/python3 tests/bench/sparse_scale.py build

About 8-10 minutes on a 2-core machine: the data, then 2-3 minutes for the
job without a cap and 4-6 with it (each eviction samples 16 rows). Files
go to a new scratch folder under /tmp, removed at the end unless --keep;
with --work DIR they go to DIR, whose data is kept and reused by the next
run with the same parameters (the runs' logs only with --keep).
--rows, --unique, --test-rows and --batch size the job (--unique 22 puts
each shard past its index's doubling, where a row costs more: see
docs/performance.md#a-model-no-worker-could-hold); --only full or --only
cap runs one job (cap alone sizes its cap from the ids written).

Needs: BUILD/bin/psd, psworker and psctl."""
import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
from harness import free_port, run, wait_for  # noqa: E402

SHARDS, WORKERS = 2, 2
FACTORS = 8
DIM = 1 + FACTORS                 # a row's floats (w and the embedding)
ROW_FLOATS_BYTES = 2 * DIM * 4    # and adagrad's accumulators: 72 bytes
WORKER_RSS_TARGET = 300e6         # bytes, each psworker's peak
PSD_ROW_TARGET = 1.3              # x ROW_FLOATS_BYTES a live row
FIELDS, VOCAB = 8, 1000           # the common fields behind the labels
DIGITS = 19                       # every id: [10^18, 10^19)
FEATURE_BYTES = 1 + DIGITS + 2    # " " id ":1"
UNIQUE_LO = 2 * 10**18
COMMON_BASE = 10**18              # field f value v: 10^18 + f·10^6 + v
CHUNK_ROWS = 50_000
TIME = "/usr/bin/time"            # GNU time (Debian's package time)


def say(text):
    print(f"sparse_scale: {text}", flush=True)


def mb(b):
    return b / 1e6


# ---- the data --------------------------------------------------------------

def lines(ids, labels):
    """Fixed-width libsvm64 lines of rows of sorted 19-digit ids: one uint8
    array, (rows, 1 + k·22 + 1)."""
    n, k = ids.shape
    feat = np.empty((n, k, FEATURE_BYTES), dtype=np.uint8)
    feat[:, :, 0] = ord(" ")
    feat[:, :, DIGITS + 1] = ord(":")
    feat[:, :, DIGITS + 2] = ord("1")
    x = ids.copy()
    ten = np.uint64(10)
    for pos in range(DIGITS, 0, -1):
        feat[:, :, pos] = (x % ten).astype(np.uint8) + ord("0")
        x //= ten
    out = np.empty((n, 1 + k * FEATURE_BYTES + 1), dtype=np.uint8)
    out[:, 0] = labels.astype(np.uint8) + ord("0")
    out[:, 1:-1] = feat.reshape(n, k * FEATURE_BYTES)
    out[:, -1] = ord("\n")
    return out


def rows_of(rng, n, unique, weights, bias):
    """n rows: their sorted ids, labels and true click probabilities."""
    values = rng.integers(0, VOCAB, size=(n, FIELDS))
    logit = bias + weights[np.arange(FIELDS), values].sum(axis=1)
    prob = 1.0 / (1.0 + np.exp(-logit))
    labels = (rng.random(n) < prob).astype(np.uint8)
    common = (np.uint64(COMMON_BASE) + np.arange(FIELDS, dtype=np.uint64) * np.uint64(10**6)
              + values.astype(np.uint64))
    rand = rng.integers(UNIQUE_LO, 10**19, size=(n, unique), dtype=np.uint64)
    ids = np.sort(np.concatenate([common, rand], axis=1), axis=1)
    while True:  # ids strictly increase in a row: draw a repeated one again
        dup = np.diff(ids, axis=1) == 0
        if not dup.any():
            return ids, labels, prob
        r = np.flatnonzero(dup.any(axis=1))
        ids[r] = np.sort(np.concatenate(
            [common[r], rng.integers(UNIQUE_LO, 10**19, size=(len(r), unique),
                                     dtype=np.uint64)], axis=1), axis=1)


def write_set(path, rng, n, unique, weights, bias):
    """Writes n rows to path (renamed into place when complete); returns
    their labels and true probabilities."""
    labels, probs = [], []
    with open(path + ".part", "wb") as f:
        for lo in range(0, n, CHUNK_ROWS):
            ids, lab, prob = rows_of(rng, min(CHUNK_ROWS, n - lo), unique, weights, bias)
            lines(ids, lab).tofile(f)
            labels.append(lab)
            probs.append(prob)
    os.replace(path + ".part", path)
    return np.concatenate(labels), np.concatenate(probs)


def make_data(work, rows, unique, test_rows, seed):
    """The training and test files under work/data (reused when a file
    data.json says was made with the same parameters), and what they hold."""
    folder = os.path.join(work, "data")
    stamp = os.path.join(folder, "data.json")
    params = {"rows": rows, "unique": unique, "test_rows": test_rows, "seed": seed,
              "fields": FIELDS, "vocab": VOCAB}
    if os.path.exists(stamp):
        with open(stamp) as f:
            info = json.load(f)
        if info.get("params") == params and all(os.path.exists(info[k]) for k in ("train",
                                                                                   "test")):
            say(f"reusing the data in {folder}")
            return info
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, 0.6, size=(FIELDS, VOCAB))
    bias = -1.2
    train, test = os.path.join(folder, "train.libsvm64"), os.path.join(folder, "test.libsvm64")
    t0 = time.monotonic()
    labels, _ = write_set(train, rng, rows, unique, weights, bias)
    dt = time.monotonic() - t0
    tlabels, tprobs = write_set(test, rng, test_rows, unique, weights, bias)
    size = os.path.getsize(train)
    say(f"wrote {train}: {rows} rows, {size / 1e9:.2f} GB in {dt:.1f} s "
        f"({size / 1e6 / dt:.0f} MB/s), {labels.mean() * 100:.1f}% positive")
    info = {"params": params, "train": train, "test": test, "train_bytes": size,
            "positive": float(labels.mean()),
            # ids drawn at random from 8·10^18: about n²/1.6·10^19 collide (1.7·10^-4 at 52.5 M)
            "keys": rows * unique + FIELDS * VOCAB,
            "best_auc": auc(tlabels, tprobs), "write_s": dt}
    with open(stamp, "w") as f:
        json.dump(info, f)
    return info


def auc(labels, scores):
    """Exact ROC AUC, tied scores sharing their mean rank (sparse_accuracy.py's)."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[first, len(s)])
    ranks = np.repeat(first + (sizes + 1) / 2.0, sizes)
    pos = y.sum()
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


# ---- processes -------------------------------------------------------------

def proc_status(pid):
    """{field: bytes} of the memory lines of /proc/PID/status; {} when gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                m = re.match(r"(Vm\w+|Rss\w+):\s+(\d+) kB", line)
                if m:
                    out[m.group(1)] = int(m.group(2)) * 1024
    except OSError:
        return {}
    return out


def smaps(pid, copy):
    """psd's memory by mapping (copied to `copy`): {(name, size): [count,
    rss, anon huge pages]}, anonymous mappings named by their size, so that
    the table's row chunks and its index show as groups."""
    groups = {}
    try:
        with open(f"/proc/{pid}/smaps") as f:
            text = f.read()
    except OSError:
        return groups
    with open(copy, "w") as f:
        f.write(text)
    name = None
    for line in text.splitlines():
        head = re.match(r"[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
        if head:
            name = head.group(1).strip() or "anonymous"
            if "/" in name:
                name = "files"
            continue
        m = re.match(r"(Size|Rss|AnonHugePages):\s+(\d+) kB", line)
        if not m:
            continue
        kb = int(m.group(2)) * 1024
        if m.group(1) == "Size":
            key = (name, kb if name == "anonymous" else 0)
            g = groups.setdefault(key, [0, 0, 0])
            g[0] += 1
        elif m.group(1) == "Rss":
            g[1] += kb
        else:
            g[2] += kb
    return groups


def child_of(pid):
    """The first child of pid (the psworker under GNU time), or None."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def job_text(info, mode, batch, max_rows):
    servers = ", ".join(f"tcp://127.0.0.1:{free_port()}" for _ in range(SHARDS))
    sparse = f"sparse:\n  max_rows: {max_rows}\n" if max_rows else ""
    return f"""job: sparse-scale
mode: {mode}
workers: {WORKERS}
servers: [{servers}]
model:
  type: fm
  factors: {FACTORS}
  init: {{scheme: normal, seed: 42}}
data:
  train: {info['train']}
  test: {info['test']}
  format: libsvm64
  stream: true
  shard: stride
optimizer:
  type: adagrad
  lr: 0.05
  l2: 0.0001
{sparse}training:
  epochs: 1
  batch_size: {batch}
  seed: 7
"""


def psd_job(build, folder, text, timeout_s):
    """One job: 2 psd shards and 2 psworkers, every process killed by PID
    at the end. Returns a dict of figures, or None (said why, with the
    logs' last lines)."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    job = os.path.join(folder, "job.yaml")
    with open(job, "w") as f:
        f.write(text)
    bin_ = os.path.join(build, "bin")
    procs, logs = [], []

    def start(tag, cmd):
        log = open(os.path.join(folder, tag + ".log"), "w")
        logs.append(log)
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append((tag, p))
        return p

    def text_of(tag):
        with open(os.path.join(folder, tag + ".log"), errors="replace") as f:
            return f.read()

    def tail(tag):
        return "\n".join(f"  [{tag}] {l}" for l in text_of(tag).splitlines()[-6:])

    try:
        psds = [start(f"psd{i}", [os.path.join(bin_, "psd"), "--config", job, "--shard", str(i)])
                for i in range(SHARDS)]
        for i in range(SHARDS):
            if not wait_for(lambda: "listening on" in text_of(f"psd{i}"), 30, f"psd{i}"):
                say(f"psd{i} did not listen\n{tail(f'psd{i}')}")
                return None
        time.sleep(0.5)
        base = [proc_status(p.pid) for p in psds]
        t0 = time.monotonic()
        # GNU time reports the worker's own peak (a child's ru_maxrss also
        # counts the pages of the process it was forked from before its
        # exec: this Python's, with numpy, for a psworker started from here)
        peaks = [os.path.join(folder, f"w{r}.maxrss") for r in range(WORKERS)]
        workers = [start(f"w{r}", [TIME, "-f", "%M", "-o", peaks[r],
                                   os.path.join(bin_, "psworker"), "--config", job, "--rank",
                                   str(r), "--summary-json",
                                   os.path.join(folder, f"summary.{r}.json")])
                   for r in range(WORKERS)]
        hwm = [0] * WORKERS            # the psworkers' VmHWM polled
        wseries = [[] for _ in range(WORKERS)]  # (seconds, a psworker's VmRSS) polled
        series = [[] for _ in range(SHARDS)]  # (seconds, psd's VmRSS) polled
        ports = [int(p) for p in re.findall(r"tcp://127\.0\.0\.1:(\d+)", text)]
        read_at = [0] * WORKERS
        stalls = []  # (seconds, shard): a worker's "no answer for" warning
        while any(w.poll() is None for w in workers):
            now = time.monotonic() - t0
            for r, w in enumerate(workers):
                pid = child_of(w.pid)
                if pid:
                    st = proc_status(pid)
                    hwm[r] = max(hwm[r], st.get("VmHWM", 0))
                    wseries[r].append((now, st.get("VmRSS", 0)))
                with open(os.path.join(folder, f"w{r}.log"), errors="replace") as f:
                    f.seek(read_at[r])
                    new = f.read()
                cut = new.rfind("\n") + 1
                read_at[r] += len(new[:cut].encode())
                for m in re.finditer(r":(\d+): no answer for", new[:cut]):
                    if int(m.group(1)) in ports:
                        stalls.append((now, ports.index(int(m.group(1)))))
            for i, p in enumerate(psds):
                series[i].append((now, proc_status(p.pid).get("VmRSS", 0)))
                if p.poll() is not None:
                    say(f"psd{i} exited {p.returncode}\n{tail(f'psd{i}')}")
                    return None
            if time.monotonic() - t0 > timeout_s:
                say(f"the workers still run after {timeout_s:.0f} s\n{tail('w0')}")
                return None
            time.sleep(0.25)
        seconds = time.monotonic() - t0
        maxrss = []
        for r, w in enumerate(workers):
            if w.returncode != 0:
                say(f"worker {r} exited {w.returncode}\n{tail(f'w{r}')}")
                return None
            with open(peaks[r]) as f:
                maxrss.append(int(f.read().split()[-1]) * 1024)
        code, out, err = run([os.path.join(bin_, "psctl"), "--config", job, "--timeout-ms",
                              "10000", "--json", "status"], 60)
        if code != 0:
            say(f"psctl status failed (exit {code}): {err.strip()}")
            return None
        tables = []
        for s in json.loads(out)["shards"]:
            t = (s.get("tables") or [None])[0]
            tables.append(t)
        end = [proc_status(p.pid) for p in psds]
        maps = [smaps(p.pid, os.path.join(folder, f"psd{i}.smaps")) for i, p in enumerate(psds)]
        with open(os.path.join(folder, "summary.0.json")) as f:
            summary = json.load(f)
        return {"seconds": seconds, "worker_maxrss": maxrss, "worker_hwm": hwm,
                "psd_base": [b.get("VmRSS", 0) for b in base],
                "psd_rss": [e.get("VmRSS", 0) for e in end],
                "psd_hwm": [e.get("VmHWM", 0) for e in end],
                "psd_anon": [e.get("RssAnon", 0) for e in end],
                "psd_series": series, "worker_series": wseries, "stalls": stalls,
                "psd_maps": maps,
                "rows": [t["rows"] if t else 0 for t in tables],
                "table_bytes": [t["bytes"] if t else 0 for t in tables],
                "evicted_cap": [t.get("evicted_cap", 0) if t else 0 for t in tables],
                "auc": summary["test_auc"]["value"], "loss": summary["test_loss"]["value"]}
    finally:
        for tag, p in procs:
            if p.returncode is None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for tag, p in procs:
            if p.returncode is not None:
                continue
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


def repeated(build, work, name, text, repeat, timeout_s):
    """repeat runs of a job: the list of their figures (None when one failed)."""
    runs = []
    for i in range(repeat):
        tag = name if repeat == 1 else f"{name}.{i + 1}"
        say(f"running {tag}")
        r = psd_job(build, os.path.join(work, "runs", tag), text, timeout_s)
        if r is None:
            return None
        say(f"{tag}: {sum(r['rows'])} table rows, test AUC {r['auc']:.4f}, "
            f"{r['seconds']:.0f} s; worker peak RSS "
            + ", ".join(f"{mb(x):.0f} MB" for x in r["worker_maxrss"])
            + "; psd RSS " + ", ".join(f"{mb(x):.0f} MB" for x in r["psd_rss"]))
        runs.append(r)
    return runs


def med(runs, key, i=None, f=None):
    """The median over runs of r[key] (or r[key][i], or f(r))."""
    vals = [f(r) if f else (r[key][i] if i is not None else r[key]) for r in runs]
    return statistics.median(vals)


# ---- the report ------------------------------------------------------------

def verdict(ok):
    return "met" if ok else "NOT met"


def report_common(runs):
    for r in range(WORKERS):
        peak = med(runs, "worker_maxrss", r)
        mid = med(runs, None, f=lambda x: rss_at(x["worker_series"][r], 0.5))
        print(f"  psworker {r} peak RSS: {mb(peak):.1f} MB (VmHWM polled "
              f"{mb(med(runs, 'worker_hwm', r)):.1f} MB; RSS halfway through training "
              f"{mb(mid):.1f} MB), target under {mb(WORKER_RSS_TARGET):.0f} MB: "
              f"{verdict(peak < WORKER_RSS_TARGET)}")
    print(f"  test AUC {med(runs, 'auc'):.4f}, log-loss {med(runs, 'loss'):.4f}; "
          f"{med(runs, 'seconds'):.0f} s from the workers' start to their exit")
    for k, r in enumerate(runs):
        if r["stalls"]:
            seen = ", ".join(f"{t:.0f} s (psd{i} at {mb(rss_before(r['psd_series'][i], t)):.0f} "
                             f"MB)" for t, i in r["stalls"])
            print(f"  {'' if len(runs) == 1 else f'run {k + 1}: '}{len(r['stalls'])} times a "
                  f"worker had no answer from a psd for over 1 s (and sent again): {seen}")


def rss_before(series, t):
    """The last VmRSS polled at or before t seconds."""
    before = [v for s, v in series if s <= t]
    return before[-1] if before else 0


def psd_maps(groups):
    """psd's biggest mappings, by RSS, in one line."""
    big = sorted(groups.items(), key=lambda kv: -kv[1][1])[:5]
    out = []
    for (name, size), (count, rss, huge) in big:
        what = f"{count} x {mb(size):.1f} MB anonymous" if name == "anonymous" else name
        out.append(f"{what}: {mb(rss):.1f} MB resident ({mb(huge):.0f} MB in huge pages)")
    return "; ".join(out)


def report_full(runs, n, info):
    rows = med(runs, None, f=lambda r: sum(r["rows"]))
    print(f"\nfull table{n}: {rows:.0f} live rows (target at least 50 M: "
          f"{verdict(rows >= 50e6)}), {mb(rows * ROW_FLOATS_BYTES) / 1e3:.2f} GB of "
          f"floats and state (target over 2 GB: {verdict(rows * ROW_FLOATS_BYTES > 2e9)})")
    report_common(runs)
    target = PSD_ROW_TARGET * ROW_FLOATS_BYTES
    for i in range(SHARDS):
        rws = med(runs, "rows", i)
        base = med(runs, "psd_base", i)
        per = med(runs, None, f=lambda r: (r["psd_rss"][i] - r["psd_base"][i]) / r["rows"][i])
        per_hwm = med(runs, None, f=lambda r: (r["psd_hwm"][i] - r["psd_base"][i]) /
                      r["rows"][i])
        table = med(runs, None, f=lambda r: r["table_bytes"][i] / r["rows"][i])
        print(f"  psd{i}: {rws:.0f} rows; RSS {mb(med(runs, 'psd_rss', i)):.0f} MB "
              f"(peak {mb(med(runs, 'psd_hwm', i)):.0f} MB, anonymous "
              f"{mb(med(runs, 'psd_anon', i)):.0f} MB), baseline {mb(base):.1f} MB before any "
              f"worker")
        print(f"    RSS less baseline per live row: {per:.1f} B = {per / ROW_FLOATS_BYTES:.3f} x "
              f"the row's {ROW_FLOATS_BYTES} B of floats and state (target at most "
              f"{PSD_ROW_TARGET} x = {target:.1f} B: {verdict(per <= target)}); peak "
              f"{per_hwm:.1f} B = {per_hwm / ROW_FLOATS_BYTES:.3f} x; the table's own "
              f"bytes {table:.1f} B a row")
        print(f"    where (/proc/PID/smaps of the first run): {psd_maps(runs[0]['psd_maps'][i])}")


def rss_at(series, frac):
    """The VmRSS polled nearest to frac of the run's time."""
    end = series[-1][0] if series else 0
    return min(series, key=lambda p: abs(p[0] - frac * end))[1] if series else 0


def report_cap(runs, n, max_rows, full_bytes_per_row):
    print(f"\nmax_rows {max_rows} a shard, half the keys over {SHARDS} shards{n}:")
    print(f"  the job finished: yes ({len(runs)} of {len(runs)} runs); each shard's table "
          f"reached its cap about halfway (the ids come in random order)")
    report_common(runs)
    budget = PSD_ROW_TARGET * ROW_FLOATS_BYTES
    for i in range(SHARDS):
        table = med(runs, None, f=lambda r: r["table_bytes"][i] / max(r["rows"][i], 1))
        hwm = med(runs, "psd_hwm", i)
        rss = med(runs, "psd_rss", i)
        base = med(runs, "psd_base", i)
        at = [med(runs, None, f=lambda r: rss_at(r["psd_series"][i], x)) for x in (0.5, 0.75)]
        print(f"  psd{i}: {med(runs, 'rows', i):.0f} rows at the end, "
              f"{med(runs, 'evicted_cap', i):.0f} evicted at the cap; RSS at 1/2 and 3/4 of the "
              f"run {mb(at[0]):.0f} and {mb(at[1]):.0f} MB, at the end {mb(rss):.0f} MB, peak "
              f"(VmHWM) {mb(hwm):.0f} MB; baseline {mb(base):.1f} MB")
        for label, per in ((f"{ROW_FLOATS_BYTES} B of floats and state", ROW_FLOATS_BYTES),
                           (f"{PSD_ROW_TARGET} x {ROW_FLOATS_BYTES} B (the per-row budget above)",
                            budget),
                           (f"the table's own {table:.1f} B", table)):
            cap = max_rows * per
            print(f"    the cap's bytes at {label} a row: {mb(cap):.0f} MB; peak RSS "
                  f"{hwm / cap:.3f} x ({verdict(hwm < cap)}), less the baseline "
                  f"{(hwm - base) / cap:.3f} x ({verdict(hwm - base < cap)})")
        if full_bytes_per_row:
            print(f"    the table's own bytes a row without the cap: {full_bytes_per_row[i]:.1f} B")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", help="the build folder (its bin/ holds psd, psworker, psctl)")
    ap.add_argument("--work", help="scratch folder (default: a new one under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--rows", type=int, default=2_500_000, help="training rows")
    ap.add_argument("--unique", type=int, default=21, help="random ids a row")
    ap.add_argument("--test-rows", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=512, help="training.batch_size")
    ap.add_argument("--mode", default="async", choices=("async", "sync"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each job (medians)")
    ap.add_argument("--only", choices=("full", "cap"), help="run one job")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds a job may take")
    a = ap.parse_args()
    if a.rows < 1 or a.unique < 1 or a.test_rows < 1 or a.repeat < 1:
        ap.error("--rows, --unique, --test-rows and --repeat are at least 1")
    build = os.path.abspath(a.build)
    for prog in ("psd", "psworker", "psctl"):
        if not os.access(os.path.join(build, "bin", prog), os.X_OK):
            ap.error(f"{build}/bin/{prog} is missing")
    if not os.access(TIME, os.X_OK):
        ap.error(f"{TIME} is missing (GNU time: sudo apt-get install time)")
    if a.work:
        work = os.path.abspath(a.work)
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix="sparse_scale-", dir="/tmp")
    say(f"scratch folder {work}" + (" (kept)" if a.keep or a.work else ""))
    try:
        return measure(a, build, work)
    finally:
        if not a.keep and not a.work:
            shutil.rmtree(work, ignore_errors=True)
        elif not a.keep:
            shutil.rmtree(os.path.join(work, "runs"), ignore_errors=True)


def measure(a, build, work):
    info = make_data(work, a.rows, a.unique, a.test_rows, a.seed)
    n = f" (medians of {a.repeat})" if a.repeat > 1 else ""
    full = cap = None
    keys = info["keys"]
    if a.only != "cap":
        full = repeated(build, work, "full", job_text(info, a.mode, a.batch, 0), a.repeat,
                        a.timeout)
        if full is None:
            return 1
        keys = int(med(full, None, f=lambda r: sum(r["rows"])))
    max_rows = math.ceil(keys / 2 / SHARDS)
    if a.only != "full":
        cap = repeated(build, work, "cap", job_text(info, a.mode, a.batch, max_rows), a.repeat,
                       a.timeout)
        if cap is None:
            return 1

    print()
    print(f"data: {a.rows} training rows of {FIELDS} common fields (vocabularies of {VOCAB}) and "
          f"{a.unique} random ids, {info['train_bytes'] / 1e9:.2f} GB of libsvm64, "
          f"{info['positive'] * 100:.1f}% positive; {info['keys']} distinct ids written; "
          f"{a.test_rows} test rows, the hidden rule's AUC on them {info['best_auc']:.4f}")
    print(f"job: fm, {FACTORS} factors, adagrad ({ROW_FLOATS_BYTES} B of floats and state a row), "
          f"{a.mode}, {SHARDS} psd shards, {WORKERS} psworkers, data.stream: true, batch "
          f"{a.batch}, 1 epoch")
    per_row = None
    if full:
        report_full(full, n, info)
        per_row = [med(full, None, f=lambda r: r["table_bytes"][i] / r["rows"][i])
                   for i in range(SHARDS)]
    if cap:
        report_cap(cap, n, max_rows, per_row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
