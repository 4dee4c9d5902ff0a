#!/usr/bin/env python3
"""hosts_straggler.py — one slow worker across hosts, on the bed
(tests/hosts/bed.py: psd and each worker in a network namespace of its
own): the quick-start Fashion-MNIST MLP (784-256-10, batch 64, 2 workers)
for --epochs epochs with every link at --rate (1 Gbit/s) and then with
worker 1's link at --slow (100 Mbit/s), per mode and data assignment:

  sync, async and ssp (staleness 2) with each rank's fixed shard
  (data.assign: static), sync with backup_workers: 1, and async and ssp
  with data.assign: dynamic (batches leased from psd's queue).

sync keeps the quick start's lr 0.1; async and ssp, which apply every push,
take 0.05; every schedule is a cosine over the run's own steps (sync:
rounds, async and ssp: pushes). Each setting runs --runs times (the
settings interleaved, so the machine's noise spreads over all of them);
printed: each run's wall time, test accuracy (rank 0's summary) and the
batches each worker trained, then medians per setting beside the same
mode's all-fast median.

Run as root from a build (by hand, never by ctest):
  tests/bench/hosts_straggler.py [--bin build/bin] [--runs 3] [--only NAME,..] [--json FILE]
Exit 77 when the bed cannot be made here (the reason is printed)."""
import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "hosts"))
import bed as bedmod  # noqa: E402
import jobs  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
TRAIN_ROWS = 60000
BATCH = 64

# name: (mode, extra job lines, links: "fast" or "slow")
SETTINGS = {
    "sync-fast": ("sync", {}, "fast"),
    "async-fast": ("async", {}, "fast"),
    "ssp2-fast": ("ssp", {}, "fast"),
    "async-dynamic-fast": ("async", {"assign": "dynamic"}, "fast"),
    "sync-slow": ("sync", {}, "slow"),
    "async-slow": ("async", {}, "slow"),
    "ssp2-slow": ("ssp", {}, "slow"),
    "sync-backup-slow": ("sync", {"backup_workers": 1}, "slow"),
    "async-dynamic-slow": ("async", {"assign": "dynamic"}, "slow"),
    "ssp2-dynamic-slow": ("ssp", {"assign": "dynamic"}, "slow"),
}


def job_text(b, mode, extra, epochs, out):
    src = os.path.join(TOP, "config", "examples", "fashion_mnist_mlp.yaml")
    text = jobs.job_for_bed(open(src).read(), os.path.dirname(src), b, 1, 2)
    text = re.sub(r"(?m)^mode:.*$", f"mode: {mode}", text)
    if mode == "ssp":
        text = re.sub(r"(?m)^mode:.*$", "mode: ssp\nstaleness: 2", text)
    if extra.get("backup_workers"):
        text = re.sub(r"(?m)^mode:.*$", f"mode: {mode}\nbackup_workers: {extra['backup_workers']}",
                      text)
    if extra.get("assign"):
        text = re.sub(r"(?m)^(\s*)format: idx.*$", rf"\1format: idx\n\1assign: {extra['assign']}",
                      text)
    text = re.sub(r"(?m)^(\s*epochs:).*$", rf"\1 {epochs}", text)
    per_epoch = math.ceil(TRAIN_ROWS / 2 / BATCH) if mode == "sync" else \
        2 * math.ceil(TRAIN_ROWS / 2 / BATCH)
    text = re.sub(r"(?m)^(\s*total_steps:).*$", rf"\1 {epochs * per_epoch}", text)
    if mode != "sync":
        text = re.sub(r"(?m)^  lr: .*$", "  lr: 0.05", text)
    text = re.sub(r"(?m)^output:.*$", f"output: {out}", text)
    return text


def run_setting(a, b, tmp, name):
    mode, extra, links = SETTINGS[name]
    b.set_rate("w1", a.slow if links == "slow" else a.rate)
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(job_text(b, mode, extra, a.epochs, os.path.join(tmp, "out")))
    j = jobs.BedJob(b, a.bin, path, 1, 2).start()
    codes = j.wait(1800)
    if any(c != 0 for c in codes.values()):
        raise RuntimeError(f"{name}: {codes}\n{j.psd_log()[-2000:]}")
    s = [j.summary(r) or {} for r in range(2)]
    acc = (s[0].get("test_metric") or {}).get("value")
    batches = [x.get("batches") for x in s]
    return {"setting": name, "wall_s": j.wall_s, "accuracy": acc, "batches": batches}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(TOP, "build", "bin"))
    p.add_argument("--rate", default="1gbit", help="every link's rate (default 1gbit)")
    p.add_argument("--slow", default="100mbit", help="worker 1's link in the slow runs")
    p.add_argument("--epochs", type=int, default=3, help="epochs a run (default 3)")
    p.add_argument("--runs", type=int, default=3, help="runs per setting (default 3)")
    p.add_argument("--only", default="", help="settings, comma-separated: " + ", ".join(SETTINGS))
    p.add_argument("--json", metavar="FILE", help="also write every run as JSON to FILE")
    a = p.parse_args()
    names = [n.strip() for n in a.only.split(",") if n.strip()] or list(SETTINGS)
    for n in names:
        if n not in SETTINGS:
            p.error(f"--only: no setting {n!r}")
    why = bedmod.unavailable_reason()
    if why:
        print(f"hosts_straggler: skipped: {why}", file=sys.stderr)
        return bedmod.SKIP
    if not os.path.exists(FASHION):
        print(f"hosts_straggler: {FASHION}: missing (Debian package dataset-fashion-mnist)",
              file=sys.stderr)
        return 2
    for prog in ("psd", "psworker"):
        if not os.access(os.path.join(a.bin, prog), os.X_OK):
            print(f"hosts_straggler: {os.path.join(a.bin, prog)}: not found (give --bin)",
                  file=sys.stderr)
            return 2
    runs = []
    with tempfile.TemporaryDirectory(prefix="ps-hosts-straggler-") as tmp, \
            bedmod.Bed(jobs.hosts_for(1, 2), rate=a.rate) as b:
        for i in range(a.runs):
            for name in names:
                r = run_setting(a, b, tmp, name)
                r["run"] = i + 1
                runs.append(r)
                print(f"run {i + 1} {name:20s} wall {r['wall_s']:6.1f} s accuracy "
                      f"{r['accuracy']:.4f} batches {r['batches']}", flush=True)
    print(f"\nFashion MLP, 2 workers, {a.epochs} epochs, links {a.rate}, worker 1 at {a.slow} "
          f"in the slow runs; medians of {a.runs}:")
    med = {}
    for name in names:
        rs = [r for r in runs if r["setting"] == name]
        med[name] = (statistics.median(r["wall_s"] for r in rs),
                     statistics.median(r["accuracy"] for r in rs))
    for name in names:
        wall, acc = med[name]
        ref = name.split("-")[0] + "-fast"
        vs = f" ({wall / med[ref][0]:.2f} x {ref}, {(acc - med[ref][1]) * 100:+.2f} points)" \
            if ref in med and ref != name else ""
        print(f"  {name:20s} wall {wall:6.1f} s accuracy {acc:.4f}{vs}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
