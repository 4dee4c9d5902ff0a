"""test_sparse.py — the sparse models end to end on a small generated click
log (psgen, 30 k + 5 k rows), 2 workers and 2 shards through psrun:
sparse_logistic (FTRL) and fm (adagrad) learn (test AUC well above 0.5:
30 k rows are too few for fm's interactions to pay, which
tests/bench/sparse_accuracy.py measures on 2 M), report an AUC in their epoch lines and
summaries, and write their table as keys.npy and rows.npy whose rows the
manifest counts, keys unique and rows of the table's width; a sync job is
deterministic (run twice: the same rows, bit for bit) and the same on 1 and
2 shards; async trains too, and so do rows in the push and pull codecs; min_count 3 stores fewer than half the rows of
min_count 1; max_rows caps each shard's rows and the job still finishes; a
streamed training file trains as well as one held in memory; a malformed
row is one line naming the file and the line; psctl status and /metrics
show each shard's rows, bytes, admissions and evictions, matching the rows
the job wrote."""
import json
import os
import re
import signal
import urllib.request

import numpy as np

from harness import Env, Proc, free_port, no_leftovers, psrun, run, stop_procs, write

env = Env()
PREFIX = os.path.join(env.tmp, "clicks")
code, out, err = run([env.prog("psgen"), "clicks", "--rows", "30000", "--test-rows", "5000",
                      "--seed", "3", "--out", PREFIX], 120)
env.check(code == 0, f"psgen writes the log ({err.strip()})")


def job(name, model="sparse_logistic", mode="sync", shards=2, extra_model="", opt=None,
        sparse="", data_extra="", train=PREFIX + ".train.tsv", epochs=2):
    servers = ", ".join(f"tcp://127.0.0.1:{free_port()}" for _ in range(shards))
    opt = opt or ("{type: ftrl, lr: 0.1, beta: 1, l1: 0.5, l2: 1}" if model == "sparse_logistic"
                  else "{type: adagrad, lr: 0.05, l2: 0.001}")
    out = os.path.join(env.tmp, name + ".out")
    text = f"""job: {name}
mode: {mode}
workers: 2
servers: [{servers}]
model:
  type: {model}
  init: {{scheme: normal, seed: 42}}
{extra_model}data:
  train: {train}
  test: {PREFIX}.test.tsv
  format: criteo
{data_extra}optimizer: {opt}
training:
  epochs: {epochs}
  batch_size: 256
  seed: 7
output: {out}
{sparse}"""
    return write(env, name + ".yaml", text), out


def train(name, **kw):
    """Runs a job through psrun; returns (summary or None, stderr, output folder)."""
    path, out = job(name, **kw)
    code, summary, err = psrun(env, path, timeout_s=300)
    env.check(code == 0 and summary is not None, f"{name}: psrun exits 0 with a summary")
    no_leftovers(env, path)
    return summary, err, out


def auc_of(summary):
    return ((summary or {}).get("test_auc") or {}).get("value", float("nan"))


def table_of(name, out, dim):
    """The exported table: keys and rows, checked against the manifest."""
    try:
        manifest = json.load(open(os.path.join(out, "manifest.json")))
        t = manifest["tables"][0]
        keys = np.load(os.path.join(out, t["keys_file"]))
        rows = np.load(os.path.join(out, t["rows_file"]))
    except (OSError, KeyError, IndexError, ValueError) as e:
        env.check(False, f"{name}: the output holds the table ({e})")
        return None, None
    env.check(t["dim"] == dim and keys.dtype == np.uint64 and rows.dtype == np.float32 and
              rows.shape == (len(keys), dim) and t["rows"] == len(keys) > 0,
              f"{name}: keys.npy and rows.npy hold the manifest's {t['rows']} rows of {dim} "
              f"floats ({keys.dtype} {keys.shape}, {rows.dtype} {rows.shape})")
    env.check(len(np.unique(keys)) == len(keys), f"{name}: every key once")
    env.check(bool(np.isfinite(rows).all()), f"{name}: rows are finite")
    order = np.argsort(keys)
    return keys[order], rows[order]


lr, err_lr, out_lr = train("lr-sync")
fm, err_fm, out_fm = train("fm-sync", model="fm", extra_model="  factors: 4\n")
for name, s, e in (("lr-sync", lr, err_lr), ("fm-sync", fm, err_fm)):
    env.check(auc_of(s) > 0.58, f"{name}: test AUC {auc_of(s):.4f} > 0.58")
    env.check("test auc" in e, f"{name}: the epoch lines show a test auc")
    env.check((s or {}).get("model") in ("sparse_logistic", "fm"),
              f"{name}: the summary names the model ({(s or {}).get('model')})")
keys_lr, rows_lr = table_of("lr-sync", out_lr, 1)
table_of("fm-sync", out_fm, 5)

# sync is deterministic, and the shards' split of the keys changes nothing
again, _, out_again = train("lr-sync-again")
one, _, out_one = train("lr-sync-1shard", shards=1)
for name, out in (("lr-sync-again", out_again), ("lr-sync-1shard", out_one)):
    k, r = table_of(name, out, 1)
    same = k is not None and keys_lr is not None and np.array_equal(k, keys_lr) and \
        np.array_equal(r, rows_lr)
    env.check(same, f"{name}: the same rows as lr-sync, bit for bit")

asy, _, _ = train("fm-async", model="fm", mode="async", extra_model="  factors: 4\n")
env.check(auc_of(asy) > 0.58, f"fm-async: test AUC {auc_of(asy):.4f} > 0.58")

# the codecs apply to rows both ways: within a hair of float32's AUC
for codec in ("push: int8, pull: fp16", "push: topk, topk_ratio: 0.5, pull: bf16"):
    name = "fm-" + codec.split(",")[0].split()[1]
    cz, _, _ = train(name, model="fm", extra_model="  factors: 4\n",
                     sparse=f"compression: {{{codec}}}\n")
    env.check(abs(auc_of(cz) - auc_of(fm)) < 0.02,
              f"{name} ({codec}): test AUC {auc_of(cz):.4f} within 0.02 of float32's "
              f"{auc_of(fm):.4f}")

# admission: keys seen fewer than 3 times are never stored
m3, _, out_m3 = train("lr-min3", sparse="sparse: {min_count: 3}\n")
k3, _ = table_of("lr-min3", out_m3, 1)
if k3 is not None and keys_lr is not None:
    env.check(len(k3) < len(keys_lr) / 2,
              f"min_count 3 stores {len(k3)} rows, fewer than half of min_count 1's "
              f"{len(keys_lr)}")
env.check(auc_of(m3) > 0.58, f"lr-min3: test AUC {auc_of(m3):.4f} > 0.58")

# the cap: at most max_rows rows a shard, the least recently updated evicted
cap, _, out_cap = train("lr-cap", sparse="sparse: {max_rows: 3000}\n")
kc, _ = table_of("lr-cap", out_cap, 1)
if kc is not None:
    env.check(len(kc) <= 2 * 3000, f"lr-cap: {len(kc)} rows on 2 shards of max_rows 3000")

# streamed: the shard read a batch at a time, in the file's order
st, _, _ = train("lr-stream", data_extra="  stream: true\n")
env.check(abs(auc_of(st) - auc_of(lr)) < 0.03,
          f"lr-stream: test AUC {auc_of(st):.4f} within 0.03 of in memory's {auc_of(lr):.4f}")

# a live job's tables as psctl status and /metrics show them, against the
# rows the job wrote: psd keeps serving after the workers are done
path, out = job("lr-live", sparse="sparse: {max_rows: 5000}\n")
mport = free_port()
with open(path, "a") as f:
    f.write(f"metrics: {{listen: 127.0.0.1:{mport}}}\n")
psds = [Proc(env, f"live-psd{i}", [env.prog("psd"), "--config", path, "--shard", str(i)])
        for i in range(2)]
workers = [Proc(env, f"live-w{r}", [env.prog("psworker"), "--config", path, "--rank", str(r)])
           for r in range(2)]
env.check(all(w.wait(120) == 0 for w in workers), "lr-live: both workers finish")
kl, _ = table_of("lr-live", out, 1)
code, sout, serr = run([env.prog("psctl"), "--config", path, "--json", "status"], 30)
try:
    shards = json.loads(sout)["shards"]
    rows = [t["rows"] for s in shards for t in s["tables"]]
    cap_evictions = sum(t["evicted_cap"] for s in shards for t in s["tables"])
except (ValueError, KeyError, TypeError) as e:
    print(f"psctl status --json: {e}: {sout!r} {serr!r}")
    rows, cap_evictions = [], 0
env.check(code == 0 and len(rows) == 2 and kl is not None and sum(rows) == len(kl),
          f"psctl status: the shards' rows {rows} add up to the {None if kl is None else len(kl)} "
          "rows written")
env.check(all(r <= 5000 for r in rows) and cap_evictions > 0,
          f"psctl status: at most max_rows 5000 a shard, {cap_evictions} evicted at the cap")
scraped = {}
for i in range(2):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{mport + i}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError as e:
        text = ""
        print(f"scrape of shard {i}: {e}")
    for name in ("psd_table_rows", "psd_table_bytes", "psd_table_admitted_total"):
        m = re.search(rf'^{name}{{shard="{i}",table="w"}} (\d+)', text, re.M)
        scraped.setdefault(name, []).append(int(m.group(1)) if m else None)
    m = re.search(rf'^psd_table_evicted_total{{shard="{i}",table="w",reason="cap"}} (\d+)',
                  text, re.M)
    scraped.setdefault("cap", []).append(int(m.group(1)) if m else None)
env.check(scraped["psd_table_rows"] == rows and None not in scraped["psd_table_bytes"] and
          None not in scraped["psd_table_admitted_total"] and
          sum(scraped["cap"] or [0]) == cap_evictions,
          f"/metrics: psd_table_rows {scraped['psd_table_rows']}, bytes, admitted and "
          f"evictions at the cap {scraped['cap']} as psctl says")
for p in psds:
    p.p.send_signal(signal.SIGTERM)
env.check(all(p.wait(30) == 0 for p in psds), "lr-live: psd exits 0 on SIGTERM")
stop_procs(env)
no_leftovers(env, path)

# a malformed row: one line naming the file and the line
bad = os.path.join(env.tmp, "bad.tsv")
with open(PREFIX + ".train.tsv") as f:
    lines = [next(f) for _ in range(50)]
lines[17] = "1\tx\n"
with open(bad, "w") as f:
    f.writelines(lines)
path, _ = job("lr-bad", train=bad)
code, _, err = psrun(env, path, timeout_s=120, summary=False)
named = [l for l in err.splitlines() if f"{bad}:18:" in l]
env.check(code not in (0, None) and named, f"a bad row fails the job with one line naming "
          f"{os.path.basename(bad)}:18 ({named[:1]})")
no_leftovers(env, path)
env.finish()
