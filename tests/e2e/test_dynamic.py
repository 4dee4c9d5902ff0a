"""test_dynamic.py — data.assign: dynamic (async, 2 workers, digits).

1. Worker 1 is slowed (SIGSTOP most of the time, SIGCONT a little): both
   finish, worker 0 trains more batches than worker 1, and the two
   summaries' "batches" add up to exactly epochs x batches an epoch, as
   psd's own count per rank says.
2. Worker 1 is SIGKILLed mid-job: psd evicts it, its leases go back to the
   queue, worker 0 trains the rest and finishes; psd applied exactly one
   push per batch of the job (pushes = version = epochs x batches an
   epoch, none dropped), and its per-rank counts add up to that."""
import json
import os
import re
import signal
import time

from harness import Env, Proc, free_port, stop_procs, wait_for, write

env = Env()
EPOCHS, BATCH, ROWS = 12, 4, 1437  # digits.train.csv
SPE = (ROWS + BATCH - 1) // BATCH
TOTAL = EPOCHS * SPE


def job(name, mode="async"):
    return write(env, f"{name}.yaml", f"""job: {name}
mode: {mode}
workers: 2
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
  assign: dynamic
optimizer: {{type: sgd, lr: 0.05}}
training: {{epochs: {EPOCHS}, batch_size: {BATCH}, seed: 7}}
heartbeat: {{interval_ms: 100, timeout_ms: 1000}}
""")


def worker(name, path, r):
    return Proc(env, f"{name}-w{r}", [env.prog("psworker"), "--config", path, "--rank", str(r),
                                      "--summary-json", os.path.join(env.tmp, f"{name}-w{r}.json")])


def start(name, mode="async", workers=2):
    path = job(name, mode)
    psd = Proc(env, f"psd-{name}", [env.prog("psd"), "--config", path, "--exit-when-done"])
    return psd, [worker(name, path, r) for r in range(workers)]


def summary(name, r):
    with open(os.path.join(env.tmp, f"{name}-w{r}.json")) as f:
        return json.load(f)


def queue_line(psd):
    """psd's per-rank batches and its queue's count, from its last line."""
    m = re.search(r"rank 0 batches (\d+), rank 1 batches (\d+); batch queue: (\d+) of (\d+)",
                  psd.text())
    return tuple(int(x) for x in m.groups()) if m else None


def pushes_line(psd):
    m = re.search(r"stopped: version (\d+), (\d+) pushes, (\d+) dropped", psd.text())
    return tuple(int(x) for x in m.groups()) if m else None


try:
    # ---- 1. a slow worker trains fewer batches, the sum is exact ----
    psd, ws = start("slowed")
    slow = ws[1].p
    while slow.poll() is None and ws[0].p.poll() is None:
        slow.send_signal(signal.SIGSTOP)
        time.sleep(0.03)
        slow.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    if slow.poll() is None:
        slow.send_signal(signal.SIGCONT)
    codes = [w.wait(60) for w in ws] + [psd.wait(30)]
    env.check(codes == [0, 0, 0], f"the slowed job's workers and psd exit 0 ({codes})")
    if codes[:2] == [0, 0]:
        s0, s1 = summary("slowed", 0), summary("slowed", 1)
        b0, b1 = s0.get("batches"), s1.get("batches")
        print(f"slowed: worker 0 trained {b0} batches, worker 1 {b1}, of {TOTAL}")
        env.check(s0["metrics"]["steps_per_epoch"] == SPE,
                  f"an epoch is {SPE} batches of the whole set ({s0['metrics']['steps_per_epoch']})")
        env.check(b0 is not None and b1 is not None and b0 + b1 == TOTAL,
                  f"the workers' batches add up to epochs x batches an epoch ({b0} + {b1}, {TOTAL})")
        env.check(b0 is not None and b1 is not None and b0 > b1,
                  "the fast worker trained more batches than the slowed one")
        env.check(queue_line(psd) == (b0, b1, TOTAL, TOTAL),
                  f"psd counts the same per rank ({queue_line(psd)})")
        env.check(s0["test_metric"]["value"] > 0.9, f"it learns ({s0['test_metric']['value']})")

    # ---- 2. a worker killed mid-job: the other trains the rest, once ----
    psd, ws = start("killed")
    killed = wait_for(lambda: "epoch 2/" in ws[1].text() or ws[1].p.poll() is not None, 30,
                      "worker 1's second epoch")
    env.check(killed and ws[1].p.poll() is None, "worker 1 is mid-job")
    ws[1].p.send_signal(signal.SIGKILL)
    ws[1].p.wait()
    code0, code_psd = ws[0].wait(60), psd.wait(30)
    env.check(code0 == 0, f"worker 0 finishes after worker 1 was killed (exit {code0})")
    env.check(code_psd == 0, f"psd ends the job complete (exit {code_psd})")
    env.check("evicted" in psd.text(), "psd evicted the killed worker")
    q, p = queue_line(psd), pushes_line(psd)
    print(f"killed: psd's queue {q}, version/pushes/dropped {p}")
    env.check(q is not None and q[0] + q[1] == TOTAL and q[2] == TOTAL,
              f"every batch of the job was trained, by one rank or the other ({q})")
    env.check(p is not None and p == (TOTAL, TOTAL, 0),
              f"one push applied per batch: version and pushes {TOTAL}, none dropped ({p})")
    if code0 == 0 and q is not None:
        b0 = summary("killed", 0).get("batches")
        env.check(b0 == q[0], f"worker 0's summary says psd's count of its batches ({b0}, {q[0]})")

    # ---- 3. ssp: a worker whose first batch stands far ahead ----
    psd, ws = start("ssp", mode="ssp\nstaleness: 2", workers=1)
    env.check(wait_for(lambda: "joined as rank 0" in psd.text() or ws[0].p.poll() is not None,
                       30, "worker 0's start"), "worker 0 registered")
    time.sleep(1.0)  # it trains up to the bound, then waits for rank 1
    ws.append(worker("ssp", os.path.join(env.tmp, "ssp.yaml"), 1))
    codes = [w.wait(60) for w in ws] + [psd.wait(30)]
    env.check(codes == [0, 0, 0], f"the ssp job's workers and psd exit 0 ({codes})")
    if codes[:2] == [0, 0]:
        b0, b1 = summary("ssp", 0).get("batches"), summary("ssp", 1).get("batches")
        print(f"ssp: worker 0 trained {b0} batches, worker 1 {b1}, of {TOTAL}")
        env.check(b0 is not None and b1 is not None and b0 + b1 == TOTAL and b1 > 0,
                  f"ssp: the workers' batches add up ({b0} + {b1}, {TOTAL})")
finally:
    stop_procs(env)
env.finish()
