#!/usr/bin/env python3
"""run.py — runs a psd job across hosts on this one machine: each psd shard
and each psworker in a network namespace of its own, joined through a
bridge by links that can be rate-limited (bed.py). For users who want to
see a job on slow links, and for benchmarks. Needs root.

  tests/hosts/run.py --workers 2 --rate 1gbit config/examples/fashion_mnist_mlp.yaml

Prints each process's log with a prefix ([psd0], [w1]) and a summary: wall
time, test metric, samples/s and the bytes each model update moved over the
psd hosts' links (from the links' counters). Exit 0 when every process
exited 0, 1 when one failed, 2 on a usage error, 77 when the bed cannot be
made here (the reason is printed)."""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bed as bedmod  # noqa: E402
import jobs  # noqa: E402


def parse_args(argv):
    top = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    p = argparse.ArgumentParser(prog="run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("job", help="the job file (its servers line is replaced by the bed's hosts)")
    p.add_argument("--workers", type=int, help="workers (default: the job's)")
    p.add_argument("--servers", type=int, help="psd shards (default: as many as the job lists)")
    p.add_argument("--rate", default=None,
                   help="every link's rate, both ways, e.g. 1gbit or 100mbit (default: unlimited)")
    p.add_argument("--bin", default=os.path.join(top, "build", "bin"),
                   help="folder of psd and psworker (default: build/bin of this checkout)")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON to FILE")
    p.add_argument("--timeout", type=float, default=1800, help="give up after this many s")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    a = p.parse_args(argv)
    if a.workers is not None and not 1 <= a.workers <= 64:
        p.error("--workers: give 1 to 64")
    if a.servers is not None and not 1 <= a.servers <= 16:
        p.error("--servers: give 1 to 16")
    try:
        bedmod.rate_bits(a.rate)
    except ValueError as e:
        p.error(str(e))
    for prog in ("psd", "psworker"):
        if not os.access(os.path.join(a.bin, prog), os.X_OK):
            p.error(f"{os.path.join(a.bin, prog)}: not found (build first, or give --bin)")
    return a


def main(argv):
    a = parse_args(argv)
    try:
        text = open(a.job).read()
        shards = a.servers or jobs.servers_in(text)
        workers = a.workers or jobs.workers_in(text)
    except (OSError, ValueError) as e:
        print(f"run.py: {a.job}: {e}", file=sys.stderr)
        return 2
    why = bedmod.unavailable_reason()
    if why:
        print(f"run.py: skipped: {why}", file=sys.stderr)
        return bedmod.SKIP
    lock = threading.Lock()

    def echo(name, line):
        if not a.quiet:
            with lock:
                print(f"[{name}] {line}", file=sys.stderr, flush=True)

    tmp = tempfile.mkdtemp(prefix="ps-hosts-")
    b = bedmod.Bed(jobs.hosts_for(shards, workers), rate=a.rate)
    try:
        with b:
            job_path = os.path.join(tmp, os.path.basename(a.job))
            with open(job_path, "w") as f:
                f.write(jobs.job_for_bed(text, os.path.dirname(os.path.abspath(a.job)), b,
                                         shards, workers))
            print(f"run.py: {shards} psd, {workers} workers, links "
                  f"{a.rate or 'unlimited'}; job {job_path}", file=sys.stderr, flush=True)
            j = jobs.BedJob(b, a.bin, job_path, shards, workers, echo=echo)
            j.t0 = time.monotonic()
            j.start_servers()
            before = j.psd_bytes()
            for r in range(workers):
                j.start_worker(r)
            codes = j.wait(a.timeout)
            return report(a, j, codes, before, j.psd_bytes(), shards, workers)
    except bedmod.Unavailable as e:
        print(f"run.py: skipped: {e}", file=sys.stderr)
        return bedmod.SKIP
    except RuntimeError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(a, j, codes, before, after, shards, workers):
    failed = {n: c for n, c in codes.items() if c != 0}
    s = j.summary(0)
    rx, tx = after[0] - before[0], after[1] - before[1]
    updates = (s or {}).get("updates") or 0
    out = {"job": os.path.basename(a.job), "rate": a.rate or "unlimited", "servers": shards,
           "workers": workers, "wall_s": j.wall_s, "exit": codes,
           "shared_memory_ranks": bedmod.shared_memory_users(j.psd_log()),
           "psd_bytes_in": rx, "psd_bytes_out": tx, "updates": updates,
           "epoch_s": j.epoch_seconds(0)}
    line = f"run.py: {out['job']} on {shards} psd + {workers} workers, links {out['rate']}: "
    if s:
        sps = 0.0
        for r in range(workers):
            sr = j.summary(r)
            sps += (sr or {}).get("samples_per_s", 0.0)
        tm = s.get("test_metric") or {}
        out.update(test_metric=tm, samples_per_s=sps, final_loss=s.get("final_loss"))
        line += f"done in {j.wall_s:.1f} s"
        if tm.get("name"):
            line += f", test {tm['name']} {tm['value']:.4f}"
        line += f", {sps:.0f} samples/s"
    else:
        line += f"no summary from rank 0 after {j.wall_s:.1f} s"
    if updates:
        out["bytes_in_per_update"] = rx / updates
        out["bytes_out_per_update"] = tx / updates
        line += (f", {rx / updates / 1e6:.3f} MB in and {tx / updates / 1e6:.3f} MB out of "
                 f"psd per update ({updates} updates)")
    if out["shared_memory_ranks"]:
        line += f"; shared memory used by ranks {out['shared_memory_ranks']}"
    if failed:
        line += "; failed: " + ", ".join(f"{n} ({'running' if c is None else f'exit {c}'})"
                                          for n, c in failed.items())
    print(line, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 1 if failed or not s else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
