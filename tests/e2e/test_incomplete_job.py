"""test_incomplete_job.py — a rank that left before its data was done is
never taken for a finished one (real psd and psworker processes on
loopback, digits softmax, 2 workers):
- SIGTERM to rank 1 mid-job: it exits 1 ("interrupted"), rank 0 finishes;
  psd --exit-when-done waits heartbeat.incomplete_wait_ms for the rank,
  then exits 3 with a line naming rank 1 and its pushes applied / expected,
  and says so to systemd (STOPPING=1 with the reason); rank 0's summary and the model's manifest list rank 1 under "unfinished";
- the same, then a new psworker for rank 1 started once rank 0 has gone,
  within the wait: it trains the rest of rank 1's data, the job completes
  (psd exits 0) and the model on disk is psd's last θ;
- ssp, rank 1 SIGSTOPped past heartbeat.timeout_ms (evicted) until rank 0
  has finished, then SIGCONT: it registers again, trains alone to the end,
  and its final θ is the model on disk (the manifest's version is psd's
  last version).
Every wait is bounded; processes are killed by PID at the end."""
import json
import os
import re
import signal
import socket

from harness import Env, Proc, free_port, no_leftovers, stop_procs, wait_for, write

env = Env()
TIMEOUT_MS = 1000
EPOCHS = 400  # 23 rounds an epoch: seconds of training, so a stop lands mid-job
STOPPED = re.compile(r"shard 0/1 stopped: version (\d+), ")
APPLIED = re.compile(r"rank (\d+) applied (\d+) clock \d+")


def job(name, mode="sync", wait_ms=2000):
    out = os.path.join(env.tmp, f"out-{name}")
    path = write(env, f"{name}.yaml", f"""job: {name}
mode: {mode}
workers: 2
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer: {{type: sgd, lr: 0.05, l2: 0.003}}
training: {{epochs: {EPOCHS}, batch_size: 32, seed: 7}}
heartbeat: {{interval_ms: 100, timeout_ms: {TIMEOUT_MS}, deadline_ms: 5000,
             incomplete_wait_ms: {wait_ms}}}
shared_memory: false
output: {out}
""" + ("staleness: 2\n" if mode == "ssp" else ""))
    return path, out


def start(name, path, notify=None):
    """psd (its sd_notify datagrams to the socket at notify, if given) and
    the two workers."""
    if notify:
        os.environ["NOTIFY_SOCKET"] = notify
    try:
        s = Proc(env, f"{name}-psd", [env.prog("psd"), "--config", path, "--exit-when-done"])
    finally:
        os.environ.pop("NOTIFY_SOCKET", None)
    wait_for(lambda: "listening on" in s.text() or s.p.poll() is not None, 20, "psd to listen")
    return s, [worker(name, path, r) for r in range(2)]


def worker(name, path, rank, tag=""):
    w = Proc(env, f"{name}-w{rank}{tag}",
             [env.prog("psworker"), "--config", path, "--rank", str(rank), "--summary-json",
              os.path.join(env.tmp, f"{name}-w{rank}{tag}.json")])
    w.summary = os.path.join(env.tmp, f"{name}-w{rank}{tag}.json")
    return w


def at_epoch(w, n=20):
    return wait_for(lambda: f"epoch {n}/{EPOCHS}" in w.text(), 60, f"{w.name} at epoch {n}")


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def final_version(s):
    m = STOPPED.search(s.text())
    return int(m.group(1)) if m else None


# 1. SIGTERM to rank 1 mid-job: psd waits, then ends the job as incomplete
path, out = job("sigterm")
notify_path = os.path.join(env.tmp, "notify.sock")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)
notify.setblocking(False)
s, ws = start("sigterm", path, notify=notify_path)
env.check(at_epoch(ws[1]), "sigterm: the job trains")
os.kill(ws[1].p.pid, signal.SIGTERM)
c1 = ws[1].wait(30)
c0 = ws[0].wait(60)
code = s.wait(30)
for p in [s] + ws:
    p.show()
text = s.text()
env.check(c1 == 1 and "interrupted" in ws[1].text(), f"sigterm: rank 1 exits 1, interrupted ({c1})")
env.check(c0 == 0, f"sigterm: rank 0 finishes (exit {c0})")
env.check(code == 3, f"sigterm: psd exits 3, the job is incomplete (exit {code})")
env.check("every worker said goodbye: the job is complete" not in text,
          "sigterm: psd does not call the job complete")
env.check("waiting up to 2000 ms" in text, "sigterm: psd says it waits for the rank")
m = re.search(r"the job is incomplete: 1 rank did not finish its data within 2000 ms: "
              r"rank 1 left at (\d+) of (\d+) pushes", text)
applied = {int(r): int(n) for r, n in APPLIED.findall(text)}
pushed, expected = (int(m.group(1)), int(m.group(2))) if m else (None, None)
env.check(m is not None and 0 < pushed < expected and expected == applied.get(0) and
          pushed == applied.get(1),
          f"sigterm: psd names rank 1 and its progress ({pushed} of {expected} pushes; "
          f"applied {applied})")
said = []
while True:
    try:
        said.append(notify.recv(4096).decode())
    except BlockingIOError:
        break
stopping = [d for d in said if d.startswith("STOPPING=1")]
env.check(len(stopping) == 1 and f"STATUS=the job is incomplete: rank 1 left at {pushed} of "
          f"{expected} pushes" in stopping[0],
          f"sigterm: psd tells systemd STOPPING=1 with the reason ({stopping})")
notify.close()
want = [{"rank": 1, "pushes": pushed, "expected": expected}]
got = load(ws[0].summary).get("unfinished")
env.check(got == want, f"sigterm: rank 0's summary lists rank 1 as unfinished ({got})")
manifest = load(os.path.join(out, "manifest.json"))
env.check(manifest.get("unfinished") == want,
          f"sigterm: the manifest lists rank 1 as unfinished ({manifest.get('unfinished')})")
env.check(manifest.get("version") == final_version(s),
          f"sigterm: the model is psd's last θ (version {manifest.get('version')}, psd "
          f"{final_version(s)})")
no_leftovers(env, path)

# 2. a new worker for rank 1 within the wait: the job completes
path, out = job("replaced", wait_ms=30000)
s, ws = start("replaced", path)
env.check(at_epoch(ws[1]), "replaced: the job trains")
os.kill(ws[1].p.pid, signal.SIGTERM)
c1 = ws[1].wait(30)
c0 = ws[0].wait(60)
alive = s.p.poll() is None
new = worker("replaced", path, 1, "-new")
cn = new.wait(60)
code = s.wait(30)
for p in [s] + ws + [new]:
    p.show()
text = s.text()
env.check(c1 == 1 and c0 == 0, f"replaced: rank 1 stopped, rank 0 finished (exit {c1}, {c0})")
env.check(alive, "replaced: psd still runs once rank 0 has gone, waiting for rank 1")
env.check(cn == 0, f"replaced: the new rank 1 finishes its data (exit {cn})")
env.check(code == 0, f"replaced: psd exits 0, the job is complete (exit {code})")
env.check("a worker joined: the wait for the unfinished ranks ends" in text,
          "replaced: psd says the wait ended")
applied = {int(r): int(n) for r, n in APPLIED.findall(text)}
env.check(len(applied) == 2 and applied[0] == applied[1],
          f"replaced: rank 1's data was trained to the end ({applied})")
manifest = load(os.path.join(out, "manifest.json"))
env.check(manifest.get("version") == final_version(s) and manifest.get("unfinished") == [],
          f"replaced: the model is psd's last θ, nothing unfinished (version "
          f"{manifest.get('version')}, psd {final_version(s)}, {manifest.get('unfinished')})")
env.check(load(new.summary).get("unfinished") == [],
          "replaced: the new worker's summary lists no unfinished rank")
no_leftovers(env, path)

# 3. ssp, rank 1 stopped past the timeout until rank 0 is done, then resumed
path, out = job("late", mode="ssp", wait_ms=30000)
s, ws = start("late", path)
env.check(at_epoch(ws[1]), "late: the job trains")
os.kill(ws[1].p.pid, signal.SIGSTOP)
try:
    c0 = ws[0].wait(60)
    first = load(os.path.join(out, "manifest.json")).get("version")
finally:
    os.kill(ws[1].p.pid, signal.SIGCONT)
c1 = ws[1].wait(60)
code = s.wait(30)
for p in [s] + ws:
    p.show()
text = s.text()
env.check("evicted" in text, "late: psd evicts the stopped rank 1")
env.check(c0 == 0 and c1 == 0 and code == 0,
          f"late: both workers and psd exit 0 (workers {c0}, {c1}, psd {code})")
got = load(ws[0].summary).get("unfinished")
env.check(bool(got) and got[0]["rank"] == 1 and got[0]["pushes"] < got[0]["expected"],
          f"late: rank 0's summary lists rank 1 as unfinished when it ended ({got})")
manifest = load(os.path.join(out, "manifest.json"))
last = final_version(s)
env.check(manifest.get("version") == last and first is not None and last > first,
          f"late: the model on disk is the late rank's final θ (manifest {manifest.get('version')},"
          f" psd's last {last}, rank 0 wrote {first})")
env.check(manifest.get("unfinished") == [], f"late: nothing unfinished in the manifest "
          f"({manifest.get('unfinished')})")
no_leftovers(env, path)

stop_procs(env)
env.finish()
