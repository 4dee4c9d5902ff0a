"""test_backup_dropped.py — a sync job with backup_workers: 1 and one
persistently slow worker (rank 1 of 2 stopped with SIGSTOP nearly all the
time): most rounds close without it (its pushes dropped as late, or the
rounds it skipped meanwhile), and the rank is named where a person looks,
not only counted in psd's stop line: a warning of psd with its applied
pushes, the rounds and its dropped pushes; "dropped_ranks" and each rank's
"pushes", "dropped" and "rounds" in the summaries (psrun's is rank 0's
worker summary, whole); and psrun's last line. The figures agree with psd's
own. Digits, softmax, loopback."""
import json
import os
import re
import signal
import subprocess
import threading
import time

from harness import Env, free_port, no_leftovers, processes_mentioning, write

env = Env()
job = write(env, "backup.yaml", f"""job: backup-dropped
mode: sync
workers: 2
backup_workers: 1
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer: {{type: sgd, lr: 0.1, l2: 0.003}}
training: {{epochs: 150, batch_size: 16, seed: 7}}
heartbeat: {{interval_ms: 100, timeout_ms: 30000, deadline_ms: 120000}}
""")
summary_path = os.path.join(env.tmp, "job.json")


err_path = os.path.join(env.tmp, "psrun.err")


def slow_down(stop_evt):
    """Once psd says rank 1 joined: SIGSTOP it for 100 ms, SIGCONT it for
    about 1 ms, until stop_evt or its end. A round closes on rank 0's push
    alone (backup_workers: 1), so the push rank 1 makes after each stop is
    late. (Stopped before it joined, it would join late and train its data
    alone at the end: a rank that starts late, not a slow one.)"""
    pid = None
    end = time.monotonic() + 60
    while pid is None and not stop_evt.is_set() and time.monotonic() < end:
        with open(err_path, errors="replace") as f:
            if "joined as rank 1 " in f.read():
                pids = [p for p in processes_mentioning("--rank 1")
                        if p in processes_mentioning(job)]
                pid = pids[0] if pids else None
        time.sleep(0.005)
    while pid is not None and not stop_evt.is_set():
        try:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.1)
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.001)
        except ProcessLookupError:
            return
    if pid is not None:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


halt = threading.Event()
slower = threading.Thread(target=slow_down, args=(halt,))
with open(err_path, "w") as errf:
    p = subprocess.Popen([env.prog("psrun"), "--summary-json", summary_path, job],
                         stdout=subprocess.PIPE, stderr=errf, text=True)
    slower.start()
    try:
        out, _ = p.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
halt.set()
slower.join()
with open(err_path, errors="replace") as f:
    err = f.read()
print(out)
print("\n".join(err.splitlines()[-12:]))
env.check(p.returncode == 0, f"psrun exits 0 ({p.returncode})")

# psd's own figures: each rank's applied pushes at its stop
applied = {int(r): int(n) for r, n in re.findall(r"rank (\d+) applied (\d+) clock \d+", err)}
version = re.search(r"stopped: version (\d+), \d+ pushes, (\d+) dropped", err)
env.check(sorted(applied) == [0, 1] and version is not None, "psd's stop lines give each rank")
a1 = applied.get(1, -1)

# 1. psd's log: a warning naming the rank with its counts
warn = re.search(r"warn: shard 0: rank 1 pushed into (\d+) of the (\d+) rounds that closed while "
                 r"it trained: more than 50% closed without it \((\d+) of its pushes dropped", err)
rounds = int(warn.group(2)) if warn else -1
dropped = int(warn.group(3)) if warn else -1
print(f"rank 1: {a1} applied of {rounds} rounds, {dropped} dropped")
env.check(warn is not None and int(warn.group(1)) == a1 and
          rounds <= int(version.group(1)) and 0 < dropped <= int(version.group(2)),
          f"psd warns of rank 1 with its applied pushes and rounds ({warn and warn.group(0)})")
# the slow rank missed most rounds: the case this test is about
env.check(rounds > 2 * a1 >= 0, f"most rounds closed without rank 1 ({a1} of {rounds})")
env.check(not re.search(r"warn: shard 0: rank 0 pushed into", err),
          "psd names no rank that pushed into most rounds")

# 2. the summaries: psrun's (rank 0's, whole) carries each rank's figures
summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
ranks = {r["rank"]: r for r in summary.get("ranks", [])}
env.check(summary.get("dropped_ranks") == [1],
          f"psrun's summary names rank 1 in dropped_ranks ({summary.get('dropped_ranks')})")
r0, r1 = ranks.get(0, {}), ranks.get(1, {})
env.check(r1.get("pushes") == a1 and r1.get("rounds") == rounds and
          r1.get("dropped") == dropped and r0.get("pushes") == applied.get(0) and
          r0.get("rounds", 0) < 2 * r0.get("pushes", 0),
          f"psrun's summary has each rank's pushes, dropped pushes and rounds as psd counted "
          f"them ({list(ranks.values())})")

# 3. psrun's last line
last = out.strip().splitlines()[-1] if out.strip() else ""
env.check(f"; rank 1 pushed into {a1} of {rounds} rounds ({dropped} of its pushes dropped as late"
          in last, f"psrun's last line names rank 1 ({last})")
env.check("rank 0 pushed" not in last, "psrun's last line names no other rank")

no_leftovers(env, job)
env.finish()
