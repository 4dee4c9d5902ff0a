"""test_worker_loss.py — a worker killed with SIGKILL in the middle of a
sync job: the servers evict it after heartbeat.timeout_ms, the others
finish, no round waits longer than timeout_ms + 1 s, and the test accuracy
is within 1 point of the undisturbed run (digits, softmax, 3 workers: 360
test images, so a point is 3.6 of them). psrun reports the job incomplete
(exit 3, its last line naming rank 1 and how far its data got, as its
summary's "unfinished" does) but still prints the summary of the workers
that finished."""
import json
import os
import re
import signal
import subprocess
import time

from harness import Env, free_port, no_leftovers, processes_mentioning, psrun, write

env = Env()
TIMEOUT_MS = 1000
extra = f"heartbeat: {{interval_ms: 100, timeout_ms: {TIMEOUT_MS}}}\non_worker_loss: continue\n"


def job(name):
    return write(env, f"{name}.yaml", f"""job: {name}
mode: sync
workers: 3
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer:
  type: sgd
  lr: 0.1
  l2: 0.003
  # 15 rounds an epoch (479 rows a worker, batch 32): the rate decays to 0, so
  # the end of the run settles the model whoever is left. 120 epochs, so the
  # kill at epoch 10 lands mid-job however fast a step is (30 took 0.1 s)
  schedule: {{type: cosine, total_steps: 1800}}
training: {{epochs: 120, batch_size: 32, seed: 7}}
{extra}""")


# the undisturbed run
base = job("undisturbed")
code, summary, _ = psrun(env, base)
env.check(code == 0 and summary is not None, "the undisturbed run succeeds")
acc0 = summary["test_metric"]["value"] if summary else 0.0

# the same job, rank 1 killed once it has trained a few epochs
victim_job = job("disturbed")
summary_path = victim_job + ".summary.json"
p = subprocess.Popen([env.prog("psrun"), "--summary-json", summary_path, victim_job],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     start_new_session=True)
killed_at = None
err_lines = []
deadline = time.monotonic() + 120
for line in p.stderr:
    err_lines.append(line.rstrip("\n"))
    if killed_at is None and line.startswith("[w1] psworker: epoch 10/"):
        pids = [pid for pid in processes_mentioning(victim_job)
                if "--rank 1 " in open(f"/proc/{pid}/cmdline").read().replace("\0", " ")]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
    if time.monotonic() > deadline:
        break
try:
    out, _ = p.communicate(timeout=120)
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    out, _ = p.communicate()
print("\n".join(err_lines[-12:]))
env.check(killed_at is not None, "rank 1 was killed in the middle of the job")
env.check(p.returncode == 3, f"psrun exits 3: the job is incomplete (got {p.returncode})")
last = err_lines[-1] if err_lines else ""
m = re.fullmatch(r"psrun: job disturbed incomplete after [\d.]+ s: 1 rank did not finish its "
                 r"data: rank 1 at (\d+) of (\d+) pushes \(w1 was killed by signal 9\)", last)
env.check(m is not None and int(m.group(1)) < int(m.group(2)),
          f"psrun's last line names rank 1 and how far it got ({last!r})")
text = "\n".join(err_lines)
env.check("the job goes on without it" in text, "psrun says the job goes on without w1")
env.check(re.search(r"rank 1 \(worker \d+\) silent for \d+ ms: evicted", text) is not None,
          "psd evicts the silent rank 1")
env.check("[w0] psworker: done:" in text and "[w2] psworker: done:" in text,
          "the other two workers finish")
longest = [int(m) for m in re.findall(r"longest round (\d+) ms", text)]
env.check(bool(longest) and max(longest) <= TIMEOUT_MS + 1000,
          f"no round waited longer than {TIMEOUT_MS} + 1000 ms (longest {longest})")
if os.path.exists(summary_path):
    with open(summary_path) as f:
        s = json.load(f)
    acc = s["test_metric"]["value"]
    got = s.get("unfinished")
    env.check(m is not None and got == [{"rank": 1, "pushes": int(m.group(1)),
                                         "expected": int(m.group(2))}],
              f"psrun's summary lists rank 1 as unfinished, as its last line does ({got})")
    env.check(abs(acc - acc0) <= 0.01,
              f"test accuracy {acc:.4f} is within 1 point of the undisturbed {acc0:.4f}")
else:
    env.check(False, "psrun wrote the summary of the workers that finished")
no_leftovers(env, victim_job)
no_leftovers(env, base)
env.finish()
