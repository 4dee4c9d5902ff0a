#!/usr/bin/env python3
"""test_pipeline.py — pipelined sync rounds (sync_chunk_kib): θ and
gradients go in chunks, psd applies each chunk once every push holds it and
sends it to the waiting pulls at once.

- the same job (an MLP on digits, 2 shards, int8 pushes and pulls,
  deterministic: true) with chunks of 4 KiB and with whole pushes
  (sync_chunk_kib: 0) writes bit-identical .npy files and the same test
  accuracy, and psd says it sent chunks of θ;
- sync_chunk_kib: auto (the default) on loopback: psd has chunks, the
  workers (on its host) send and take θ whole, no chunk of θ is sent;
- a worker SIGKILLed in the middle of the job (rounds in chunks): psd evicts
  it, a new worker takes its rank over, and the job ends consistent: both
  shards at the same version, no round left part applied, the last worker
  on that final version."""
import os
import re
import signal

from harness import Env, Proc, free_port, no_leftovers, psrun, stop_procs, wait_for, write

env = Env()
DONE = re.compile(r"psworker: done: rank (\d+),.* test accuracy ([0-9.]+),.* version (\d+)")
CHUNKS = re.compile(r"sync rounds pipelined in (\d+) chunks: (\d+) chunks of θ sent")


def job_text(name, chunk_kib, output=None, epochs=3, batch=32, timeout_ms=3000,
             optimizer="{type: momentum, lr: 0.05, momentum: 0.9}", hidden=128):
    servers = ", ".join(f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    out = f"output: {output}\n" if output else ""
    return f"""job: {name}
mode: sync
workers: 2
servers: [{servers}]
shared_memory: false
deterministic: true
sync_chunk_kib: {chunk_kib}
model: {{type: mlp, features: 64, classes: 10, hidden: [{hidden}]}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer: {optimizer}
training: {{epochs: {epochs}, batch_size: {batch}, seed: 7}}
compression: {{push: int8, pull: int8}}
heartbeat: {{interval_ms: 100, timeout_ms: {timeout_ms}, deadline_ms: 60000}}
{out}"""


# ---- chunked and whole: the same bits ------------------------------------
def run_job(name, chunk_kib, **kw):
    out = os.path.join(env.tmp, f"out-{name}")
    path = write(env, f"{name}.yaml", job_text(name, chunk_kib, output=out, **kw))
    code, summary, err = psrun(env, path, timeout_s=120)
    env.check(code == 0, f"{name}: psrun exits 0")
    files = sorted(f for f in os.listdir(out) if f.endswith(".npy")) if os.path.isdir(out) else []
    acc = summary.get("test_accuracy") if summary else None
    if acc is None and summary:
        acc = summary.get("metrics", {}).get("test_accuracy")
    m = re.findall(r"test accuracy ([0-9.]+)", err)
    no_leftovers(env, path)
    return {f: open(os.path.join(out, f), "rb").read() for f in files}, (m[-1] if m else None), err


whole, acc_whole, err_whole = run_job("whole", 0)
chunked, acc_chunked, err_chunked = run_job("chunked", 4)
sent = [(int(n), int(s)) for n, s in CHUNKS.findall(err_chunked)]
env.check(len(sent) == 2 and all(n == 5 and s > 0 for n, s in sent),
          f"chunked: both shards pipelined their rounds in 5 chunks and sent chunks of θ ({sent})")
env.check(not CHUNKS.search(err_whole), "whole: sync_chunk_kib 0 sends θ whole")
env.check(bool(whole) and sorted(whole) == sorted(chunked),
          f"both runs write {sorted(whole)}")
env.check(bool(whole) and all(whole[f] == chunked.get(f) for f in whole),
          "the chunked run's .npy files are bit-identical to the whole run's")
env.check(acc_whole is not None and acc_whole == acc_chunked,
          f"the same test accuracy: {acc_chunked} chunked, {acc_whole} whole")

# ---- auto (the default): chunks only over links that leave the host ------
# θ of 64·512 + 512 + 512·10 + 10 floats: 2 shards of 19205 keys, each 2
# chunks of 64 KiB by auto's rule; the workers on loopback send it whole.
_, acc_auto, err_auto = run_job("auto", "auto", hidden=512, epochs=1)
sent = [(int(n), int(s)) for n, s in CHUNKS.findall(err_auto)]
env.check(len(sent) == 2 and all(n == 2 and s == 0 for n, s in sent),
          f"auto: both shards have 2 chunks and loopback workers took θ whole ({sent})")
env.check(acc_auto is not None and float(acc_auto) > 0.8, f"auto: test accuracy {acc_auto}")

# ---- a worker killed mid-job, its rank taken over -----------------------
path = write(env, "kill.yaml", job_text("kill", 4, epochs=4, batch=4, timeout_ms=1000,
                                     optimizer="{type: sgd, lr: 0.02}"))
psd = Proc(env, "kill-psd", [env.prog("psd"), "--config", path, "--shard", "0",
                             "--exit-when-done"])
psd1 = Proc(env, "kill-psd1", [env.prog("psd"), "--config", path, "--shard", "1",
                               "--exit-when-done"])
wait_for(lambda: "listening on" in psd.text() and "listening on" in psd1.text(), 20,
         "kill: both shards listen")


def worker(rank, tag=""):
    return Proc(env, f"kill-w{rank}{tag}",
                [env.prog("psworker"), "--config", path, "--rank", str(rank)])


w0, w1 = worker(0), worker(1)
wait_for(lambda: "epoch 2/" in w1.text() or w1.p.poll() is not None, 60, "kill: rank 1 at epoch 2")
os.kill(w1.p.pid, signal.SIGKILL)
w1.wait(10)
wait_for(lambda: "evicted" in psd.text() and "evicted" in psd1.text(), 20,
         "kill: both shards evict rank 1")
w1b = worker(1, "-new")
codes = [w0.wait(120), w1b.wait(120)]
psd_codes = [psd.wait(30), psd1.wait(30)]
for p in (psd, psd1, w0, w1b):
    p.show()
env.check(codes == [0, 0] and psd_codes == [0, 0],
          f"kill: rank 0, the new rank 1 and both shards exit 0 ({codes}, {psd_codes})")
versions = [re.findall(r"stopped: version (\d+)", p.text()) for p in (psd, psd1)]
env.check(all(len(v) == 1 for v in versions) and versions[0] == versions[1],
          f"kill: both shards stop at the same version ({versions})")
for name, p in (("shard 0", psd), ("shard 1", psd1)):
    env.check("no final checkpoint" not in p.text() and "AddressSanitizer" not in p.text(),
              f"kill: {name}: stopped at a whole version")
done = {}
for w in (w0, w1b):
    for m in DONE.finditer(w.text()):
        done[int(m.group(1))] = (float(m.group(2)), int(m.group(3)))
final = int(versions[0][0]) if versions[0] else -1
env.check(sorted(done) == [0, 1] and done[1][1] == final,
          f"kill: the new rank 1 ends on the shards' final version {final} ({done})")
env.check(all(a > 0.8 for a, _ in done.values()), f"kill: test accuracy above 0.8 ({done})")

stop_procs(env)
no_leftovers(env, path)
env.finish()
