"""bench_modes.py — the tables of consistency modes in docs/modes.md#measured: one example job
run with psrun in each mode (sync, async, ssp s=2, sync with one backup
worker, local SGD H=8 in sync mode), printing test accuracy, wall time,
updates (pushes psd applied or dropped) and the bytes the workers pushed
(pushes x parameters x 4: float32, no compression), measured here.
Usage: bench_modes.py BUILD_DIR JOB.yaml WORKERS"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

build, job, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = open(job).read()
base = re.sub(r"(?m)^output: .*$", "", base)
base = re.sub(r"(?m)^workers: .*$", f"workers: {workers}", base)
base = re.sub(r"(?m)^(data:\n(?:  .*\n)*?  (?:train|test): )\./", r"\1" +
              os.path.dirname(os.path.abspath(job)) + "/", base)
base = base.replace("./data/", os.path.dirname(os.path.abspath(job)) + "/data/")
MODES = [("sync", "", ""), ("async", "mode: async", ""), ("ssp s=2", "mode: ssp\nstaleness: 2", ""),
         ("sync, 1 backup", "backup_workers: 1", ""),
         ("local SGD H=8", "", "local_steps: 8")]
tmp = tempfile.mkdtemp(prefix="ps-bench-modes-")
print(f"| mode | test accuracy | wall time | updates | MB pushed |")
print(f"|---|---|---|---|---|")
for name, top, training in MODES:
    text = re.sub(r"(?m)^mode: .*$", "", base) if "mode:" in top else base
    text = top + "\n" + text
    if training:
        # plain model averaging: local sgd at the job's lr, the servers' sgd at lr 1
        lr = re.search(r"(?m)^  lr: ([0-9.e-]+)", text).group(1)
        text = re.sub(r"(?m)^training:\n", f"training:\n  {training}\n"
                      f"  local_optimizer: {{type: sgd, lr: {lr}}}\n", text)
        text = re.sub(r"(?m)^  lr: [0-9.e-]+", "  lr: 1.0", text, count=1)
        text = re.sub(r"(?m)^  schedule:\n(    .*\n)*", "", text)
    path = os.path.join(tmp, name.replace(" ", "_").replace(",", "").replace("=", "") + ".yaml")
    open(path, "w").write(text)
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(build, "bin", "psrun"), "--summary-json", path + ".json",
                        path], capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    m = re.search(r"stopped: version \d+, (\d+) pushes", p.stderr)
    if p.returncode != 0 or m is None:
        print(f"| {name} | failed (exit {p.returncode}) | | | |")
        sys.stderr.write(p.stderr[-2000:])
        continue
    s = json.load(open(path + ".json"))
    updates = sum(int(x) for x in re.findall(r"stopped: version \d+, (\d+) pushes", p.stderr))
    pushed = s["updates"]
    params = int(re.search(r"(\d+) param", p.stderr).group(1)) if re.search(r"(\d+) param",
                                                                             p.stderr) else 0
    mb = f"{pushed * params * 4 / 1e6:.1f}" if params else f"{pushed} pushes"
    print(f"| {name} | {s['test_metric']['value']:.4f} | {wall:.1f} s | {updates} | {mb} |",
          flush=True)
