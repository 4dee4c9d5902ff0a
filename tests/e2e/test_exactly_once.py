"""test_exactly_once.py — psd SIGKILLed three times during an async job
that checkpoints every 100 ms, and started again each time on the same job
file. psd applies every push once: at the end its count of each rank's
applied pushes equals what that rank's worker counts as held by psd (the
pushes psd acknowledged, as applied or as a duplicate of one sent again
across a restart, less those a restart from a checkpoint rolled back).
Had a push in flight across a crash been applied twice, psd's count would
be higher. And no batch is lost: the rolled-back batches are trained
again, so each rank ends with all of its rounds applied."""
import os
import re
import signal
import time

from harness import Env, Proc, free_port, no_leftovers, stop_procs, wait_for, write

env = Env()
ckpt = os.path.join(env.tmp, "ckpt")
EPOCHS, BATCH = 100, 2
path = write(env, "once.yaml", f"""job: once
mode: async
workers: 2
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer: {{type: sgd, lr: 0.05, l2: 0.003}}
training: {{epochs: {EPOCHS}, batch_size: {BATCH}, seed: 7}}
heartbeat: {{interval_ms: 100, timeout_ms: 5000, deadline_ms: 60000}}
checkpoint: {{dir: {ckpt}, every_seconds: 0.1, keep: 2}}
""")

RANKS = re.compile(r"rank (\d+) applied (\d+) clock (\d+)")
HOLDS = re.compile(r"shard 0 holds (\d+) pushes of this worker, (\d+) rolled back")
ROUNDS = re.compile(r"(\d+) steps per epoch")


def start_psd(tag):
    p = Proc(env, f"psd-{tag}", [env.prog("psd"), "--config", path, "--exit-when-done"])
    wait_for(lambda: "listening on" in p.text() or p.p.poll() is not None, 20, f"psd {tag} listens")
    return p


psd = start_psd("0")
workers = [Proc(env, f"w{r}", [env.prog("psworker"), "--config", path, "--rank", str(r), "--log-level", "debug"])
           for r in range(2)]
kills = 0
for k in range(3):
    # let it train and checkpoint a while, then kill psd at once
    wait_for(lambda: psd.text().count("checkpoint written") >= 3 or psd.p.poll() is not None, 60,
             f"psd {k} writes checkpoints")
    time.sleep(0.35 + 0.1 * k)
    if psd.p.poll() is not None:
        break
    os.kill(psd.p.pid, signal.SIGKILL)
    psd.wait(10)
    kills += 1
    psd = start_psd(str(k + 1))
    env.check("checkpoint loaded" in psd.text() or "loaded" in psd.text(),
              f"restart {k + 1}: psd loads its newest checkpoint")

codes = [w.wait(240) for w in workers]
code = psd.wait(30)
for p in [psd] + workers:
    p.show()
env.check(kills == 3, f"psd was killed {kills} times while the job ran")
env.check(codes == [0, 0] and code == 0, f"every process exits 0 (workers {codes}, psd {code})")

applied = {int(r): int(n) for r, n, _ in RANKS.findall(psd.text())}
held, rolled = {}, {}
for r, w in enumerate(workers):
    m = HOLDS.search(w.text())
    if m:
        held[r], rolled[r] = int(m.group(1)), int(m.group(2))
print(f"psd applied {applied}; workers: held {held}, rolled back {rolled}")
env.check(sorted(applied) == [0, 1] and sorted(held) == [0, 1],
          "psd's stop line and both workers' tallies are there")
for r in (0, 1):
    env.check(applied.get(r) == held.get(r),
              f"rank {r}: psd applied {applied.get(r)} pushes, its worker counts {held.get(r)} held "
              "(no push applied twice, none lost unsaid)")
m = ROUNDS.search(workers[0].text())
spe = int(m.group(1)) if m else None
env.check(spe is not None and all(applied.get(r) == spe * EPOCHS for r in (0, 1)),
          f"each rank ends with all of its {spe} x {EPOCHS} rounds applied: rolled-back batches "
          f"were trained again ({applied})")
stop_procs(env)
no_leftovers(env, path)
env.finish()
