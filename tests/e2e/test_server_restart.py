"""test_server_restart.py — psd killed with SIGKILL in the middle of a sync
job and started again on the same job file: it loads its newest checkpoint,
the workers find out by themselves (the restarted server does not know
them: they register again and go on from the checkpoint's round), and the
job finishes within 1 point of the undisturbed run's test accuracy."""
import json
import os
import signal
import subprocess
import threading
import time

from harness import Env, free_port, no_leftovers, write

env = Env()


def job(name):
    port = free_port()
    ckpt = os.path.join(env.tmp, f"ckpt-{name}")
    return write(env, f"{name}.yaml", f"""job: {name}
mode: sync
workers: 2
servers: [tcp://127.0.0.1:{port}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer:
  type: sgd
  lr: 0.1
  l2: 0.003
  schedule: {{type: cosine, total_steps: 9000}}   # 90 rounds an epoch
training: {{epochs: 100, batch_size: 8, seed: 7}}
heartbeat: {{interval_ms: 100, timeout_ms: 2000}}
checkpoint: {{dir: {ckpt}, every_seconds: 0.2, keep: 2}}
""")


class Proc:
    """A child whose stderr lines are collected by a thread."""

    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if any(text in l for l in self.lines):
                return True
            if self.p.poll() is not None:
                self.t.join(1)
                return any(text in l for l in self.lines)
            time.sleep(0.02)
        return False

    def finish(self, timeout_s):
        try:
            self.p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(2)
        return self.p.returncode


def run(name, kill):
    path = job(name)
    psd_cmd = [env.prog("psd"), "--config", path, "--exit-when-done"]
    psd = Proc(psd_cmd)
    env.check(psd.wait_for("listening on", 20), f"{name}: psd listens")
    workers = [Proc([env.prog("psworker"), "--config", path, "--rank", str(r),
                     "--summary-json", f"{path}.w{r}.json"]) for r in range(2)]
    psd2 = None
    if kill:
        env.check(workers[0].wait_for("epoch 30/100", 60), f"{name}: training reached epoch 30")
        env.check(psd.wait_for("checkpoint written", 10), f"{name}: psd wrote checkpoints")
        psd.p.send_signal(signal.SIGKILL)
        psd.finish(10)
        time.sleep(0.5)
        psd2 = Proc(psd_cmd)
        env.check(psd2.wait_for("listening on", 20), f"{name}: the restarted psd listens")
        loaded = [l for l in psd2.lines if "checkpoint loaded:" in l]
        print("\n".join(loaded))
        env.check(len(loaded) == 1, f"{name}: the restarted psd loads its checkpoint")
    codes = [w.finish(180) for w in workers]
    for r, w in enumerate(workers):
        print(f"--- w{r}\n" + "\n".join(w.lines[-4:]))
    env.check(codes == [0, 0], f"{name}: both workers finish (exit {codes})")
    last = psd2 or psd
    env.check(last.finish(30) == 0, f"{name}: psd exits 0 once every worker left")
    print("--- psd\n" + "\n".join(last.lines[-4:]))
    if kill:
        rejoined = [l for w in workers for l in w.lines if "registered again" in l]
        env.check(len(rejoined) >= 2, f"{name}: both workers registered again by themselves")
    no_leftovers(env, path)
    with open(f"{path}.w0.json") as f:
        return json.load(f)["test_metric"]["value"]


acc0 = run("undisturbed", False)
acc1 = run("restarted", True)
env.check(abs(acc1 - acc0) <= 0.01,
          f"test accuracy {acc1:.4f} is within 1 point of the undisturbed {acc0:.4f}")
env.finish()
