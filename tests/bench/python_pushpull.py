"""python_pushpull.py — the Python client's push + pull of 1 M floats
(psd.Client.push_pull, one worker, async mode, θ and gradient as NumPy
arrays handed over without a copy) beside the C client's in the same run
(psbench --only pushpull_1M: its 1-worker figures), over TCP and through
shared memory. Medians, in ms.

usage: /usr/bin/python3 tests/bench/python_pushpull.py [--build build] [--reps 50]"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

P = 1 << 20  # psbench's "1M"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_figure(build, shm, reps, folder):
    import psd
    job = os.path.join(folder, f"bench_{'shm' if shm else 'tcp'}.yaml")
    with open(job, "w") as f:
        f.write(f"job: py-bench\nmode: async\nworkers: 1\n"
                f"servers: [tcp://127.0.0.1:{free_port()}]\n"
                f"model: {{type: custom, tensors: [{{name: x, shape: [{P}]}}], "
                f"init: {{scheme: zeros}}}}\n"
                f"data: {{train: {job}}}\n"  # psd never reads it; the loader checks it exists
                f"optimizer: {{type: sgd, lr: 0.001}}\n"
                f"shared_memory: {'true' if shm else 'false'}\n"
                f"worker: {{command: ['true']}}\n")
    p = subprocess.Popen([os.path.join(build, "bin", "psd"), "--config", job],
                         stderr=subprocess.PIPE, text=True)
    ready = threading.Event()

    def read():
        for line in p.stderr:
            if "listening on" in line:
                ready.set()
        ready.set()
    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(20):
            raise SystemExit("psd did not listen within 20 s")
        with psd.Client(job) as c:
            theta = c.pull()
            grad = np.zeros(c.num_params, np.float32)
            for _ in range(5):
                c.push_pull(grad, samples=1, out=theta)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                c.push_pull(grad, samples=1, out=theta)
                times.append(time.perf_counter() - t0)
            nshm = c.shared_memory()[0]
        return statistics.median(times) * 1e3, nshm
    finally:
        p.kill()
        p.wait()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--build", default="build")
    a.add_argument("--reps", type=int, default=50)
    args = a.parse_args()
    build = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(build, "python"))
    with tempfile.TemporaryDirectory() as folder:
        py = {k: python_figure(build, k == "shm", args.reps, folder) for k in ("tcp", "shm")}
    r = subprocess.run([os.path.join(build, "bin", "psbench"), "--only", "pushpull_1M", "--json"],
                       capture_output=True, text=True, timeout=300)
    c = {f["figure"]: f["ours"] for f in json.loads(r.stdout)}
    print(f"push + pull of {P} floats, 1 worker, medians (ms):")
    print(f"{'path':<6} {'Python psd.Client':>18} {'C (psbench)':>12} {'ratio':>6}")
    for k in ("tcp", "shm"):
        cm = c.get(f"pushpull_1M_{k}_1w", float("nan"))
        ms, nshm = py[k]
        print(f"{k:<6} {ms:>18.2f} {cm:>12.2f} {ms / cm:>6.2f}"
              + ("" if (nshm > 0) == (k == "shm") else "  (shared memory not as asked)"))


if __name__ == "__main__":
    main()
