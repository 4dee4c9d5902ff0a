"""test_worker_faults.py — how a job ends when training diverges, and what a
worker does while psd is stalled, with real psd and psworker processes:
- divergence (an MLP at lr 1e30, a linear model at lr 1e6): every process
  exits 1, each worker says in one line which epoch diverged and
  why (the diverging one names optimizer.lr), and no .npy is written;
  with on_divergence: continue the old behaviour stays (one warning, exit 0);
- psd SIGSTOPped for longer than heartbeat.timeout_ms, then resumed: the
  workers say that the server is silent and that it answers again, are not
  evicted (psd forgives its own stall), go on, and the job finishes."""
import os
import re
import signal
import subprocess
import time

from harness import Env, Proc, free_port, no_leftovers, stop_procs, wait_for, write

env = Env()
TIMEOUT_MS = 1000
DEADLINE_MS = 20000
HEARTBEAT = (f"heartbeat: {{interval_ms: 100, timeout_ms: {TIMEOUT_MS}, "
             f"deadline_ms: {DEADLINE_MS}}}\n")


def start_job(name, text, workers):
    """psd (--exit-when-done) and the job's workers on the job text."""
    path = write(env, f"{name}.yaml", text)
    s = Proc(env, f"{name}-psd", [env.prog("psd"), "--config", path, "--exit-when-done"])
    wait_for(lambda: "listening on" in s.text() or s.p.poll() is not None, 20, "psd to listen")
    ws = [Proc(env, f"{name}-w{r}", [env.prog("psworker"), "--config", path, "--rank", str(r)])
          for r in range(workers)]
    return path, s, ws


def npy_files(folder):
    if not os.path.isdir(folder):
        return []
    return [f for f in os.listdir(folder) if f.endswith(".npy")]


DIVERGED = re.compile(r"training diverged in epoch (\d+): (loss is|θ holds) (nan|inf|-inf) ")


def diverging_job(name, model, lr, features, train, extra, workers=2, on_divergence=None):
    out = os.path.join(env.tmp, f"out-{name}")
    policy = f"on_divergence: {on_divergence}\n" if on_divergence else ""
    text = f"""job: {name}
mode: sync
workers: {workers}
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: {model}, features: {features}{extra}, init: {{scheme: xavier, seed: 42}}}}
data:
  train: {train}
  normalize: none
optimizer: {{type: sgd, lr: {lr}}}
training: {{epochs: 5, batch_size: 16, seed: 7}}
output: {out}
shared_memory: false
{HEARTBEAT}{policy}"""
    return start_job(name, text, workers) + (out,)


def check_diverged(name, lr_text, model, lr, features, train, extra):
    path, s, ws, out = diverging_job(name, model, lr, features, train, extra)
    t0 = time.monotonic()
    codes = [w.wait(60) for w in ws]
    took = time.monotonic() - t0
    code = s.wait(20)
    for p in [s] + ws:
        p.show()
    env.check(codes == [1] * len(ws), f"{name}: every worker exits 1 (exit {codes})")
    env.check(code == 1, f"{name}: psd exits 1: the job was stopped (exit {code})")
    env.check(took < DEADLINE_MS / 1000, f"{name}: the workers end in {took:.1f} s, "
              f"not after heartbeat.deadline_ms")
    for w in ws:
        lines = [l for l in w.text().splitlines() if DIVERGED.search(l)]
        env.check(len(lines) == 1, f"{name}: {w.name} says once which epoch diverged "
                  f"({len(lines)} lines)")
    own = [l for w in ws for l in w.text().splitlines()
           if DIVERGED.search(l) and l.startswith("psworker: training diverged")]
    env.check(bool(own) and f"(optimizer.lr {lr_text} is likely too high)" in own[0],
              f"{name}: the worker that saw it names optimizer.lr {lr_text} as the likely cause")
    env.check(all("-nan" not in w.text() for w in ws), f"{name}: no worker prints -nan")
    env.check(npy_files(out) == [], f"{name}: no .npy is written ({npy_files(out)})")
    no_leftovers(env, path)


bc = os.path.join(env.data, "breast_cancer.train.csv")
line = os.path.join(env.data, "line.csv")

# 1. an MLP at lr 1e30 and a linear model at lr 1e6 diverge: the job stops
check_diverged("mlp-1e30", "1e+30", "mlp", "1e30", 30, bc, ", classes: 2, hidden: [16]")
check_diverged("linear-1e6", "1e+06", "linear", "1e6", 1, line, "")

# 2. on_divergence: continue keeps the old behaviour: one warning, exit 0
path, s, ws, out = diverging_job("linear-continue", "linear", "1e6", 1, line, "", workers=1,
                                 on_divergence="continue")
codes = [w.wait(60) for w in ws]
code = s.wait(20)
for p in [s] + ws:
    p.show()
env.check(codes == [0], f"on_divergence continue: the worker finishes (exit {codes})")
env.check(code == 0, f"on_divergence continue: psd exits 0 (exit {code})")
warned = [l for l in ws[0].text().splitlines() if DIVERGED.search(l)]
env.check(len(warned) == 1 and warned[0].endswith("; going on"),
          f"on_divergence continue: one warning ({len(warned)})")
no_leftovers(env, path)

# 3. psd stopped (SIGSTOP) for 2.5 heartbeat timeouts, then resumed: the
#    workers wait for it, say so once each way, go on, and the job finishes
text = f"""job: stall
mode: sync
workers: 2
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer: {{type: sgd, lr: 0.1, l2: 0.003}}
training: {{epochs: 30, batch_size: 32, seed: 7}}
shared_memory: false
{HEARTBEAT}"""
path, s, ws = start_job("stall", text, 2)
env.check(wait_for(lambda: "epoch 2/" in ws[0].text(), 60, "epoch 2"), "the stall job trains")
os.kill(s.p.pid, signal.SIGSTOP)
time.sleep(2.5 * TIMEOUT_MS / 1000)
os.kill(s.p.pid, signal.SIGCONT)
codes = [w.wait(120) for w in ws]
code = s.wait(30)
for p in [s] + ws:
    p.show()
env.check(codes == [0, 0], f"both workers finish after psd's stall (exit {codes})")
env.check(code == 0, f"psd exits 0 at the job's end (exit {code})")
for w in ws:
    t = w.text()
    silent = re.findall(r": no answer for \d+ ms, waiting up to \d+ ms", t)
    again = re.findall(r": answers again after \d+ ms", t)
    env.check(len(silent) >= 1 and len(again) == len(silent),
              f"{w.name} says that psd is silent, and that it answers again as often "
              f"({len(silent)}, {len(again)})")
    env.check("the other workers are behind" not in t, f"{w.name} blames no other worker")
    env.check("registered again" not in t, f"{w.name} was not registered again")
no_leftovers(env, path)

stop_procs(env)
env.finish()
