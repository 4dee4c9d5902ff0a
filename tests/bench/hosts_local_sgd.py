#!/usr/bin/env python3
"""hosts_local_sgd.py — local SGD across hosts through faults, on the bed
(tests/hosts/bed.py: psd and each worker in a network namespace of its own,
links at --rate): the quick-start Fashion-MNIST MLP (784-256-10, batch 64,
2 workers, sync) with local SGD (H = 8 steps of sgd at the quick start's
lr 0.1, then plain averaging: the servers' sgd at lr 1, no schedule), for
--epochs epochs, in three cases:

- undisturbed: the reference;
- worker-stopped: rank 1 SIGSTOPped for 5 s once it logs its second epoch
  (past the default heartbeat timeout of 3 s, so psd evicts it) and then
  continued;
- server-link-down: psd's link down for 5 s at the same point (both ranks
  evicted; they come back).

Each case runs --runs times, the cases interleaved so that the machine's
noise spreads over all three; printed: each run's test accuracy (of the
rank whose final θ is the job's last) and wall time, then per case the
median beside the undisturbed median, and the difference in points.

Run as root from a build (by hand, never by ctest):
  tests/bench/hosts_local_sgd.py [--bin build/bin] [--runs 3] [--json FILE]
Exit 77 when the bed cannot be made here (the reason is printed)."""
import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "hosts"))
import bed as bedmod  # noqa: E402
import jobs  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
FAULT_S = 5.0


def job_text(b, epochs, out):
    src = os.path.join(TOP, "config", "examples", "fashion_mnist_mlp.yaml")
    text = jobs.job_for_bed(open(src).read(), os.path.dirname(src), b, 1, 2)
    text = re.sub(r"(?m)^(\s*epochs:).*$", rf"\1 {epochs}", text)
    text = re.sub(r"(?m)^  lr: .*$", "  lr: 1.0", text)
    text = re.sub(r"(?m)^  schedule:.*\n(    .*\n)+", "", text)
    text = re.sub(r"(?m)^(\s*)seed: 7.*$",
                  r"\1seed: 7\n\1local_steps: 8\n\1local_optimizer: {type: sgd, lr: 0.1}", text)
    text = re.sub(r"(?m)^output:.*$", f"output: {out}", text)
    return text


def stop_rank1(b, j):
    j.ws[1].signal(signal.SIGSTOP)
    try:
        time.sleep(FAULT_S)
    finally:
        j.ws[1].signal(signal.SIGCONT)


def psd_link_down(b, j):
    b.link_down("psd0")
    try:
        time.sleep(FAULT_S)
    finally:
        b.link_up("psd0")


CASES = {"undisturbed": None, "worker-stopped": stop_rank1, "server-link-down": psd_link_down}


def run_case(a, b, tmp, name, fault):
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(job_text(b, a.epochs, os.path.join(tmp, "out")))
    j = jobs.BedJob(b, a.bin, path, 1, 2).start()
    if fault is not None:
        if j.ws[1].wait_line(r"epoch 2/", 300) is None:
            raise RuntimeError(f"{name}: rank 1 never reached epoch 2:\n{j.worker_log(1)[-2000:]}")
        fault(b, j)
    codes = j.wait(1200)
    if any(c != 0 for c in codes.values()):
        raise RuntimeError(f"{name}: {codes}\n{j.psd_log()[-2000:]}")
    got = [s for s in (j.summary(r) for r in range(2)) if s is not None]
    if not got:
        raise RuntimeError(f"{name}: no summary")
    last = max(got, key=lambda s: s.get("version", 0))
    evicted = len(re.findall(r"silent for \d+ ms: evicted", j.psd_log()))
    return {"case": name, "accuracy": last["test_metric"]["value"],
            "loss": last["test_loss"]["value"], "wall_s": j.wall_s, "evictions": evicted}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(TOP, "build", "bin"))
    p.add_argument("--rate", default="1gbit", help="every link's rate (default 1gbit)")
    p.add_argument("--epochs", type=int, default=3, help="epochs a run (default 3)")
    p.add_argument("--runs", type=int, default=3, help="runs per case (default 3)")
    p.add_argument("--json", metavar="FILE", help="also write every run as JSON to FILE")
    a = p.parse_args()
    why = bedmod.unavailable_reason()
    if why:
        print(f"hosts_local_sgd: skipped: {why}", file=sys.stderr)
        return bedmod.SKIP
    if not os.path.exists(FASHION):
        print(f"hosts_local_sgd: {FASHION}: missing (Debian package dataset-fashion-mnist)",
              file=sys.stderr)
        return 2
    for prog in ("psd", "psworker"):
        if not os.access(os.path.join(a.bin, prog), os.X_OK):
            print(f"hosts_local_sgd: {os.path.join(a.bin, prog)}: not found (give --bin)",
                  file=sys.stderr)
            return 2
    runs = []
    with tempfile.TemporaryDirectory(prefix="ps-hosts-lsgd-") as tmp, \
            bedmod.Bed(jobs.hosts_for(1, 2), rate=a.rate) as b:
        for i in range(a.runs):
            for name, fault in CASES.items():
                r = run_case(a, b, tmp, name, fault)
                r["run"] = i + 1
                runs.append(r)
                print(f"run {i + 1} {name:17s} accuracy {r['accuracy']:.4f} "
                      f"log-loss {r['loss']:.4f} wall {r['wall_s']:6.1f} s "
                      f"evictions {r['evictions']}", flush=True)
    base = statistics.median(r["accuracy"] for r in runs if r["case"] == "undisturbed")
    print(f"\nlocal SGD H=8, Fashion MLP, 2 workers, {a.epochs} epochs, links {a.rate}, "
          f"medians of {a.runs}:")
    for name in CASES:
        accs = [r["accuracy"] for r in runs if r["case"] == name]
        walls = [r["wall_s"] for r in runs if r["case"] == name]
        med = statistics.median(accs)
        print(f"  {name:17s} accuracy {med:.4f} (range {min(accs):.4f}-{max(accs):.4f}), "
              f"{(med - base) * 100:+.2f} points against undisturbed {base:.4f}; "
              f"wall {statistics.median(walls):.1f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
