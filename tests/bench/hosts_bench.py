#!/usr/bin/env python3
"""hosts_bench.py — psd across hosts on this one machine (tests/hosts/bed.py:
psd and each worker in a network namespace of its own, links through a
bridge), at each link rate asked for (default: 1 Gbit/s, then unlimited),
every figure beside the links' own capacity measured in the same run:

- link_tcp: one TCP stream through the link, one way, in Gbit/s;
- pushpull_{1k,1M}_hosts_{1,2}w (psbench --netns-*): a push with a pull
  behind it, every byte over the links, against raw ZeroMQ moving the same
  bytes over the same links, step by step in the same run; medians;
- fashion_mlp_epoch_2w: an epoch of the Fashion-MNIST MLP (the quick start,
  784-256-10, batch 64, sync) with 2 workers, median of the epochs the
  workers log, against the time the bytes the psd link carried per epoch
  (counters) need at link_tcp's rate, one direction after the other as sync
  rounds send them;
- pushpull_1M_hosts_1w_<codec> (psbench): a push + pull of 1M floats
  compressed (compression push/pull), against raw ZeroMQ moving them
  uncompressed over the same links;
- fashion_mlp_wall_2w_<codec> (--codecs): the same Fashion-MNIST job (2
  workers, sync, --epochs) per compression setting, median wall time and
  test accuracy of --runs runs, against the uncompressed job's median in
  the same run.

Run as root from a build (by hand, never by ctest: timing targets belong in
benchmarks):  tests/bench/hosts_bench.py [--bin build/bin] [--json FILE]
Exit 77 when the bed cannot be made here (the reason is printed)."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "hosts"))
import bed as bedmod  # noqa: E402
import jobs  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

# one TCP stream: the receiver counts bytes until EOF, the sender times N
# bytes until the receiver has them all (its one-byte answer)
TCP_SINK = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1); print("listening", flush=True)
s.settimeout(30); c, _ = s.accept(); c.settimeout(30)
buf = bytearray(1 << 20); n = 0
while True:
    k = c.recv_into(buf)
    if not k: break
    n += k
c.sendall(b"k"); print(n, flush=True)
"""
TCP_SOURCE = r"""
import socket, sys, time
total = int(sys.argv[2]); chunk = b"\0" * (1 << 20)
c = socket.create_connection((sys.argv[1], 5001), timeout=30)
t0 = time.monotonic(); sent = 0
while sent < total:
    c.sendall(chunk); sent += len(chunk)
c.shutdown(socket.SHUT_WR); c.recv(1)
print(f"{sent * 8 / (time.monotonic() - t0) / 1e9:.4f}", flush=True)
"""


def tcp_gbits(b, src, dst, total_bytes):
    """Gbit/s of one TCP stream src -> dst."""
    sink = b.start(dst, [sys.executable, "-c", TCP_SINK, b.addr(dst)], name="sink")
    if sink.wait_line("listening", 10) is None:
        raise RuntimeError(f"tcp sink on {dst} did not start: {sink.text()}")
    code, out = b.run(src, [sys.executable, "-c", TCP_SOURCE, b.addr(dst), str(total_bytes)], 120)
    sink.wait(30)
    if code != 0:
        raise RuntimeError(f"tcp source on {src}: exit {code}: {out}")
    return float(out.strip().splitlines()[-1])


def psbench_hosts(a, b, workers):
    """psbench's across-hosts figures: [{figure, ours, reference, ratio, unit}]."""
    cmd = [os.path.join(a.bin, "psbench"), "--json", "--reps", str(a.reps),
           "--netns-server", b.ns("psd0"),
           "--netns-workers", ",".join(b.ns(f"w{r}") for r in range(workers)),
           "--host", b.addr("psd0")]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"psbench: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout)


# --codecs settings: the job's compression section
CODECS = {"none": "{push: none, pull: none}",
          "fp16": "{push: fp16, pull: fp16}",
          "int8": "{push: int8, pull: int8}",
          "int8_fp16": "{push: int8, pull: fp16}",
          "topk1": "{push: topk, topk_ratio: 0.01, error_feedback: true}"}


def fashion_epochs(a, b, rate, tmp, compression=None):
    """Epoch times (s) of both workers, psd bytes in/out per epoch, accuracy."""
    src = os.path.join(TOP, "config", "examples", "fashion_mnist_mlp.yaml")
    text = jobs.job_for_bed(open(src).read(), os.path.dirname(src), b, 1, 2)
    if compression:
        text = re.sub(r"(?m)^compression:.*$", "", text) + f"\ncompression: {compression}\n"
    text = re.sub(r"(?m)^(\s*epochs:).*$", rf"\1 {a.epochs}", text)
    text = re.sub(r"(?m)^output:.*$", f"output: {os.path.join(tmp, 'out')}", text)
    path = os.path.join(tmp, f"fashion-{rate or 'unlimited'}.yaml")
    with open(path, "w") as f:
        f.write(text)
    j = jobs.BedJob(b, a.bin, path, 1, 2)
    j.start_servers()
    before = j.psd_bytes()
    for r in range(2):
        j.start_worker(r)
    codes = j.wait(1200)
    rx, tx = j.psd_bytes()
    if any(c != 0 for c in codes.values()):
        raise RuntimeError(f"fashion job: {codes}\n{j.psd_log()[-2000:]}")
    users = bedmod.shared_memory_users(j.psd_log())
    if users:
        raise RuntimeError(f"fashion job: ranks {users} used shared memory")
    epochs = j.epoch_seconds(0) + j.epoch_seconds(1)
    s = j.summary(0) or {}
    return {"epoch_s": epochs, "wall_s": j.wall_s,
            "bytes_in_per_epoch": (rx - before[0]) / a.epochs,
            "bytes_out_per_epoch": (tx - before[1]) / a.epochs,
            "accuracy": (s.get("test_metric") or {}).get("value")}


def fashion_codecs(a, b, rate, tmp, tag, codecs):
    """Median wall time and accuracy of a.runs Fashion runs per setting,
    against the uncompressed setting's median (always run, first)."""
    walls, accs = {}, {}
    for c in ["none"] + [c for c in codecs if c != "none"]:
        if c not in CODECS:
            raise RuntimeError(f"--codecs: {c} is not one of {', '.join(CODECS)}")
        walls[c], accs[c] = [], []
        for i in range(a.runs):
            r = fashion_epochs(a, b, rate, tmp, CODECS[c])
            walls[c].append(r["wall_s"])
            accs[c].append(r["accuracy"])
            print(f"hosts_bench: fashion {c} run {i + 1}: {r['wall_s']:.1f} s, accuracy "
                  f"{r['accuracy']}, psd in {r['bytes_in_per_epoch'] / 1e6:.0f} MB, out "
                  f"{r['bytes_out_per_epoch'] / 1e6:.0f} MB per epoch", file=sys.stderr,
                  flush=True)
    ref = statistics.median(walls["none"])
    out = []
    for c in walls:
        med = statistics.median(walls[c])
        out.append({"figure": f"fashion_mlp_wall_2w_{c}_{tag}", "ours": med, "reference": ref,
                    "ratio": med / ref, "unit": "s",
                    "reference_is": f"uncompressed, median of {a.runs}; accuracy "
                                    f"{statistics.median(accs[c]):.4f} vs "
                                    f"{statistics.median(accs['none']):.4f}",
                    "walls_s": walls[c], "accuracies": accs[c]})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(TOP, "build", "bin"))
    p.add_argument("--rates", default="1gbit,unlimited",
                   help="link rates to measure, comma-separated (default 1gbit,unlimited)")
    p.add_argument("--epochs", type=int, default=3, help="Fashion MLP epochs a run (default 3)")
    p.add_argument("--reps", type=float, default=1.0, help="psbench --reps (default 1)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    p.add_argument("--no-train", action="store_true", help="leave out the Fashion-MNIST epochs")
    p.add_argument("--no-psbench", action="store_true", help="leave out psbench's figures")
    p.add_argument("--codecs", default="",
                   help="compression settings for Fashion-MNIST wall times, comma-separated: "
                        + ", ".join(CODECS) + " (default none)")
    p.add_argument("--runs", type=int, default=3, help="runs per --codecs setting (default 3)")
    a = p.parse_args()
    why = bedmod.unavailable_reason()
    if why:
        print(f"hosts_bench: skipped: {why}", file=sys.stderr)
        return bedmod.SKIP
    for prog in ("psd", "psworker", "psbench"):
        if not os.access(os.path.join(a.bin, prog), os.X_OK):
            print(f"hosts_bench: {os.path.join(a.bin, prog)}: not found (give --bin)",
                  file=sys.stderr)
            return 2
    train = not a.no_train and os.path.exists(FASHION)
    if not a.no_train and not train:
        print("hosts_bench: no Fashion-MNIST (Debian package dataset-fashion-mnist): "
              "no epoch figures", file=sys.stderr)
    figures = []
    t_start = time.monotonic()
    for rate in [r.strip() for r in a.rates.split(",") if r.strip()]:
        rate = None if rate == "unlimited" else rate
        tag = rate or "unlimited"
        with tempfile.TemporaryDirectory(prefix="ps-hosts-bench-") as tmp, \
                bedmod.Bed(jobs.hosts_for(1, 2), rate=rate) as b:
            up = tcp_gbits(b, "w0", "psd0", 400 << 20 if rate is None else 200 << 20)
            down = tcp_gbits(b, "psd0", "w0", 400 << 20 if rate is None else 200 << 20)
            link = statistics.mean([up, down])
            figures.append({"figure": f"link_tcp_{tag}", "ours": link, "reference": link,
                            "ratio": 1.0, "unit": "Gbit/s",
                            "reference_is": f"one TCP stream, w0 -> psd0 {up:.3f}, back {down:.3f}"})
            print(f"hosts_bench: {tag}: one TCP stream {up:.3f} Gbit/s up, {down:.3f} down",
                  file=sys.stderr, flush=True)
            for f in ([] if a.no_psbench else psbench_hosts(a, b, 2)):
                f["figure"] += f"_{tag}"
                f["reference_is"] = ("raw zmq, 4 MB float32 each way, same links"
                                     if "_1w_" in f["figure"] else "raw zmq, same bytes, same links")
                figures.append(f)
                print(f"hosts_bench: {f['figure']}: {f['ours']:.4g} ms, raw {f['reference']:.4g} "
                      f"ms, ratio {f['ratio']:.3f}", file=sys.stderr, flush=True)
            codecs = [c.strip() for c in a.codecs.split(",") if c.strip()]
            if train and codecs:
                figures += fashion_codecs(a, b, rate, tmp, tag, codecs)
            if train and not codecs:
                r = fashion_epochs(a, b, rate, tmp)
                med = statistics.median(r["epoch_s"])
                wire = (r["bytes_in_per_epoch"] + r["bytes_out_per_epoch"]) * 8 / (link * 1e9)
                figures.append({"figure": f"fashion_mlp_epoch_2w_{tag}", "ours": med,
                                "reference": wire, "ratio": med / wire, "unit": "s",
                                "reference_is": f"{(r['bytes_in_per_epoch'] + r['bytes_out_per_epoch']) / 1e6:.0f} MB "
                                                f"over psd's link at link_tcp",
                                "epochs_s": r["epoch_s"], "wall_s": r["wall_s"],
                                "accuracy": r["accuracy"]})
                print(f"hosts_bench: fashion_mlp_epoch_2w_{tag}: median epoch {med:.2f} s "
                      f"(epochs {', '.join(f'{e:.2f}' for e in r['epoch_s'])}), wire {wire:.2f} s, "
                      f"{a.epochs} epochs in {r['wall_s']:.1f} s, test accuracy "
                      f"{r['accuracy']}", file=sys.stderr, flush=True)
    print("| figure | ours | reference | ratio | reference is |")
    print("|---|---|---|---|---|")
    for f in figures:
        print(f"| {f['figure']} | {f['ours']:.4g} {f['unit']} | {f['reference']:.4g} {f['unit']} | "
              f"{f['ratio']:.2f} | {f.get('reference_is', '')} |")
    print(f"hosts_bench: done in {time.monotonic() - t_start:.0f} s", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(figures, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
