"""test_server_faults.py — how a job ends when psd is stalled, stopped or
doubled, with real psd and psworker processes on loopback:
- psd SIGSTOPped for three heartbeat timeouts, then resumed: nobody is
  evicted, psd logs its stall, the job finishes and psd exits only once
  every rank said goodbye;
- both workers SIGSTOPped past the timeout: psd evicts them but does not
  end the job; they come back and it finishes;
- SIGTERM to psd mid-job: every worker exits 1 at once with the reason,
  not after deadline_ms;
- on_worker_loss: abort with a worker killed: psd and the healthy worker
  exit 1 at once, naming the lost rank;
- a second psd on the same ipc:// endpoint refuses to start;
- psctl status without a server prints its error alone;
- a job under CPU load (three busy processes a core) evicts nobody;
- a worker of another mode is told the two modes at once.
Every wait is bounded; processes are killed by PID at the end."""
import os
import signal
import subprocess
import sys
import time

from harness import Env, Proc, free_port, no_leftovers, run, stop_procs, wait_for, write

env = Env()
TIMEOUT_MS = 1000
DEADLINE_MS = 60000  # the default: a worker that waits it out fails the bound below


def job(name, endpoint=None, epochs=40, extra=""):
    endpoint = endpoint or f"tcp://127.0.0.1:{free_port()}"
    return write(env, f"{name}.yaml", f"""job: {name}
mode: sync
workers: 2
servers: [{endpoint}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer: {{type: sgd, lr: 0.1, l2: 0.003}}
training: {{epochs: {epochs}, batch_size: 32, seed: 7}}
heartbeat: {{interval_ms: 100, timeout_ms: {TIMEOUT_MS}, deadline_ms: {DEADLINE_MS}}}
shared_memory: false
{extra}""")


def psd(name, path, exit_when_done=True):
    cmd = [env.prog("psd"), "--config", path] + (["--exit-when-done"] if exit_when_done else [])
    return Proc(env, name, cmd)


def worker(name, path, rank):
    return Proc(env, name, [env.prog("psworker"), "--config", path, "--rank", str(rank)])


def started(p):
    return "epoch 2/" in p.text()


def start_job(name, **kw):
    path = job(name, **kw)
    s = psd(name + "-psd", path)
    wait_for(lambda: "listening on" in s.text(), 20, "psd to listen")
    ws = [worker(f"{name}-w{r}", path, r) for r in range(2)]
    return path, s, ws


# 1. psd stalled (SIGSTOP) for three heartbeat timeouts, then resumed
path, s, ws = start_job("stalled-psd")
env.check(wait_for(lambda: started(ws[0]), 60, "epoch 2"), "the stall job trains")
os.kill(s.p.pid, signal.SIGSTOP)
time.sleep(3 * TIMEOUT_MS / 1000)
os.kill(s.p.pid, signal.SIGCONT)
codes = [w.wait(120) for w in ws]
code = s.wait(20)
for p in [s] + ws:
    p.show()
text = s.text()
env.check(codes == [0, 0], f"both workers finish after psd's stall (exit {codes})")
env.check(code == 0, f"psd exits 0 once both said goodbye (exit {code})")
env.check("psd was stalled for" in text, "psd logs its own stall")
env.check("evicted" not in text, "nobody is evicted for psd's stall")
env.check("every worker said goodbye: the job is complete" in text, "psd ends the job at its end")
no_leftovers(env, path)

# 2. both workers stalled past the timeout: evicted, back, the job finishes
path, s, ws = start_job("stalled-workers")
env.check(wait_for(lambda: started(ws[0]), 60, "epoch 2"), "the second job trains")
for w in ws:
    os.kill(w.p.pid, signal.SIGSTOP)
time.sleep(2.5 * TIMEOUT_MS / 1000)
env.check(s.p.poll() is None, "psd does not end the job when every worker was evicted")
for w in ws:
    os.kill(w.p.pid, signal.SIGCONT)
codes = [w.wait(120) for w in ws]
code = s.wait(20)
for p in [s] + ws:
    p.show()
env.check("evicted" in s.text(), "psd evicts the stopped workers")
env.check(codes == [0, 0], f"both workers come back and finish (exit {codes})")
env.check(code == 0, f"psd exits 0 at the job's end (exit {code})")
no_leftovers(env, path)

# 3. SIGTERM to psd mid-job: the workers are told and exit 1 at once
path, s, ws = start_job("sigterm")
env.check(wait_for(lambda: started(ws[0]), 60, "epoch 2"), "the third job trains")
os.kill(s.p.pid, signal.SIGTERM)
t0 = time.monotonic()
code = s.wait(20)
codes = [w.wait(30) for w in ws]
took = time.monotonic() - t0
for p in [s] + ws:
    p.show()
env.check(code == 0, f"psd exits 0 after SIGTERM (exit {code})")
env.check(codes == [1, 1], f"both workers exit 1 (exit {codes})")
env.check(took < 15, f"the workers end within 15 s of the SIGTERM, not deadline_ms ({took:.1f} s)")
env.check(all("stopped by SIGTERM" in w.text() for w in ws),
          "each worker names psd's SIGTERM as the reason")
no_leftovers(env, path)

# 4. on_worker_loss: abort, a worker killed: everyone ends at once with the reason
path, s, ws = start_job("abort", extra="on_worker_loss: abort\n")
env.check(wait_for(lambda: started(ws[0]), 60, "epoch 2"), "the fourth job trains")
ws[1].p.kill()
t0 = time.monotonic()
code = s.wait(30)
c0 = ws[0].wait(30)
took = time.monotonic() - t0
ws[1].wait(5)
for p in [s] + ws:
    p.show()
env.check(code == 1, f"psd exits 1: the job was aborted (exit {code})")
env.check(c0 == 1, f"the healthy worker exits 1 (exit {c0})")
env.check(took < TIMEOUT_MS / 1000 + 15, f"it ends within the timeout + 15 s ({took:.1f} s)")
env.check("rank 1 was silent for" in ws[0].text(), "the healthy worker names the lost rank")
no_leftovers(env, path)

# 5. a second psd on the same ipc:// endpoint refuses to start
sock = os.path.join(env.tmp, "shard0.ipc")
path = job("ipc", endpoint=f"ipc://{sock}")
first = psd("ipc-psd1", path, exit_when_done=False)
wait_for(lambda: "listening on" in first.text(), 20, "the first psd")
second = psd("ipc-psd2", path, exit_when_done=False)
code = second.wait(20)
second.show()
env.check(code == 1, f"the second psd exits 1 (exit {code})")
env.check("another process serves it" in second.text(), "it says the endpoint is in use")
env.check(first.p.poll() is None, "the first psd keeps serving")
first.p.terminate()
env.check(first.wait(20) == 0, "the first psd stops on SIGTERM")

# 6. psctl status with no server: one error line and no empty table
code, out, err = run([env.prog("psctl"), "--config", path, "--timeout-ms", "300", "status"], 30)
print(out, err)
env.check(code == 1, f"psctl status without a server exits 1 (exit {code})")
env.check(out == "", f"psctl prints no table header without an answer ({out!r})")
env.check(len(err.splitlines()) == 1 and "no answer within 300 ms" in err,
          "psctl says in one line that the shard did not answer")
no_leftovers(env, path)

# 7. under CPU load (three busy processes a core) nobody is evicted: psd
# reads what arrived before it evicts and forgives its own stalls, and the
# workers' heartbeat threads have sockets and an I/O thread of their own
burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(6)]
try:
    path, s, ws = start_job("loaded", epochs=15)
    codes = [w.wait(240) for w in ws]
    code = s.wait(30)
finally:
    for b in burners:
        b.kill()
        b.wait()
for p in [s] + ws:
    p.show()
env.check(codes == [0, 0] and code == 0, f"the job under load finishes (exit {codes}, {code})")
env.check("evicted" not in s.text(), "nobody is evicted under load")
no_leftovers(env, path)

# 8. a worker whose job file says another mode is told so at once
path = job("modes")
s = psd("modes-psd", path)
wait_for(lambda: "listening on" in s.text(), 20, "psd to listen")
other = write(env, "modes-async.yaml", open(path).read().replace("mode: sync", "mode: async"))
code, out, err = run([env.prog("psworker"), "--config", other, "--rank", "0"], 60)
print(err)
env.check(code == 2, f"the async worker exits 2 (exit {code})")
env.check("the servers run mode sync, the job file says mode async" in err,
          "it names the two modes")
s.p.terminate()
s.wait(20)
no_leftovers(env, path)

stop_procs(env)
env.finish()
