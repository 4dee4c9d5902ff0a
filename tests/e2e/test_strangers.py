"""test_strangers.py — strangers cannot lock a job's workers out.

1. A CURVE job with 200 TCP connections that never send a byte and 200
   CURVE clients with keys psd does not know (ps_strangers; ZeroMQ connects
   each again whenever psd refuses it), all held for the whole job: both
   workers join within 5 s, a replacement for a worker killed mid-job
   joins within 5 s, and the job finishes. Three rounds, each with a psd of
   its own. (Before, the strangers filled limits.max_peers, psd closed every
   later connection, and the workers gave up: no reply to HELLO.)
2. A flood of short-lived peers that each send one STATUS (180 a second),
   while a job starts: no worker's first HELLO is refused, and neither is a
   flood peer's one STATUS. (Before, the peers filled psd's table of message
   rates and a new worker failed at once: "more than 100 messages a second
   before registering".)
"""
import os
import signal
import socket
import subprocess
import threading
import time

from harness import Env, job_yaml, no_leftovers, run, write

env = Env()
JOIN_S = 5.0
IDLE, CURVE_STRANGERS, ROUNDS = 200, 200, 3
HB = "heartbeat: {interval_ms: 200, timeout_ms: 1500, deadline_ms: 10000}\n"


class Lines:
    """A process whose stderr (and stdout) lines are kept with the time each
    came; the Popen is in .p."""

    def __init__(self, name, cmd):
        self.name = name
        self.lines = []  # (monotonic time, line)
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace")
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def first(self, text, after=0.0):
        """The time of the first line holding text that came after `after`."""
        for t, line in list(self.lines):
            if t >= after and text in line:
                return t
        return None

    def wait_line(self, text, timeout_s, after=0.0):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            t = self.first(text, after)
            if t is not None:
                return t
            if self.p.poll() is not None:
                self.t.join(1)
                return self.first(text, after)
            time.sleep(0.02)
        return None

    def wait(self, timeout_s):
        try:
            return self.p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.t.join(2)

    def tail(self, n=8):
        return "\n".join(f"  {self.name}: {l}" for _, l in self.lines[-n:])


keys = os.path.join(env.tmp, "keys")
os.makedirs(os.path.join(keys, "workers"))
for name in ("psd", "worker"):
    code, _, err = run([env.prog("psctl"), "keygen", os.path.join(keys, name)], 30)
    env.check(code == 0, f"psctl keygen {name} ({err.strip()})")
os.link(os.path.join(keys, "worker.key"), os.path.join(keys, "workers", "worker.key"))
CURVE = (f"security:\n  curve:\n"
         f"    server_secret_key: {keys}/psd.key_secret\n"
         f"    server_public_key: {keys}/psd.key\n"
         f"    client_secret_key: {keys}/worker.key_secret\n"
         f"    authorized_workers: {keys}/workers/\n")


def endpoint_of(text):
    line = [l for l in text.splitlines() if l.startswith("servers:")][0]
    return line.split("[")[1].split("]")[0].strip()


def idle_connections(port, n):
    """n TCP connections to psd that never send; the ones that connected."""
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            pass
    return socks


def worker(job, tag, rank):
    return Lines(tag, [env.prog("psworker"), "--config", job, "--rank", str(rank)])


# ---- 1. idle and CURVE strangers held for the whole job ------------------
joins = []
for rnd in range(1, ROUNDS + 1):
    text = job_yaml(env, f"strangers-{rnd}", epochs=60, extra=HB + CURVE)
    job = write(env, f"strangers-{rnd}.yaml", text)
    ep = endpoint_of(text)
    port = int(ep.rsplit(":", 1)[1])
    psd = Lines("psd", [env.prog("psd"), "--config", job, "--exit-when-done"])
    listening = psd.wait_line("listening on", 30)
    env.check(listening is not None, f"round {rnd}: psd listens")
    idle = idle_connections(port, IDLE)
    strangers = Lines("strangers", [env.prog("ps_strangers"), "--endpoint", ep, "--job",
                                    f"strangers-{rnd}", "--curve", str(CURVE_STRANGERS),
                                    os.path.join(keys, "psd.key")])
    up = strangers.wait_line("CURVE sockets connecting", 30)
    env.check(len(idle) == IDLE and up is not None,
              f"round {rnd}: {len(idle)} idle connections and {CURVE_STRANGERS} CURVE strangers")
    time.sleep(1.0)  # the strangers knock for a while first
    start = time.monotonic()
    ws = [worker(job, f"w{r}", r) for r in range(2)]
    joined = [psd.wait_line(f"joined as rank {r}", JOIN_S + 5, start) for r in range(2)]
    took = [None if t is None else t - start for t in joined]
    joins += [t for t in took if t is not None]
    env.check(all(t is not None and t <= JOIN_S for t in took),
              f"round {rnd}: both workers join within {JOIN_S} s ({took})")
    if any(t is None for t in took):  # locked out: the rest of the round would only wait
        for p in [psd, strangers] + ws:
            p.stop()
            print(p.tail())
        for s in idle:
            s.close()
        no_leftovers(env, job)
        break
    # rank 1 killed mid-job; once psd has evicted it, a replacement joins
    mid = ws[1].wait_line("epoch 5/", 60)
    if ws[1].p.poll() is None:
        ws[1].p.send_signal(signal.SIGKILL)
    gone = psd.wait_line("rank 1 (worker", 20, mid or start)
    again = time.monotonic()
    repl = worker(job, "w1'", 1)
    rejoined = psd.wait_line("joined as rank 1", JOIN_S + 5, again)
    took_r = None if rejoined is None else rejoined - again
    if took_r is not None:
        joins.append(took_r)
    env.check(mid is not None and gone is not None and took_r is not None and took_r <= JOIN_S,
              f"round {rnd}: a replacement for rank 1, killed mid-job, joins within {JOIN_S} s "
              f"({took_r})")
    codes = [ws[0].wait(60), repl.wait(60)]
    env.check(codes == [0, 0], f"round {rnd}: rank 0 and the replacement finish the job ({codes})")
    code = psd.wait(30)
    env.check(code == 0, f"round {rnd}: psd exits 0 once the job is complete ({code})")
    strangers.p.send_signal(signal.SIGTERM)
    strangers.wait(10)
    for s in idle:
        s.close()
    for p in [psd, strangers, repl] + ws:
        p.stop()
    log = "\n".join(l for _, l in psd.lines)
    env.check("refused CURVE key" in log and "connections have not registered" in log,
              f"round {rnd}: psd refused the unknown keys and closed idle connections for room")
    if env.failures:
        for p in [psd, strangers, repl] + ws:
            print(p.tail())
    no_leftovers(env, job)
print(f"join times (s): {' '.join(f'{t:.2f}' for t in joins)}")

# ---- 2. a flood of short-lived STATUS peers while the workers join -------
# the default limits (max_peers 72 for 2 workers, unregistered_rate 100)
text = job_yaml(env, "strangers-flood", epochs=20, extra=HB)
job = write(env, "strangers-flood.yaml", text)
ep = endpoint_of(text)
psd = Lines("psd", [env.prog("psd"), "--config", job, "--exit-when-done"])
env.check(psd.wait_line("listening on", 30) is not None, "flood: psd listens")
flood = Lines("flood", [env.prog("ps_strangers"), "--endpoint", ep, "--job", "strangers-flood",
                        "--flood", "180"])
time.sleep(4.0)  # 720 peers by now: psd's table of rates had 512 slots, each kept 10 s
ws = [worker(job, f"w{r}", r) for r in range(2)]
codes = [w.wait(60) for w in ws]
env.check(codes == [0, 0], f"flood: both workers join and finish ({codes})")
for w in ws:
    if w.p.poll() is not None and w.p.returncode != 0:
        print(w.tail())
env.check(not any("before registering" in l for w in ws for _, l in w.lines),
          "flood: no worker is told it sent too many messages before registering")
code = psd.wait(30)
env.check(code == 0, f"flood: psd exits 0 once the job is complete ({code})")
flood.p.send_signal(signal.SIGTERM)
flood.wait(10)
flood.stop()
said = [l for _, l in flood.lines if "flood sent" in l]
print("\n".join(l for _, l in flood.lines))
counts = said[0].split("flood sent ")[1].split() if said else []
env.check(len(counts) == 5 and int(counts[0]) >= 500 and int(counts[4]) == 0,
          f"flood: hundreds of STATUS sent, none refused ({said})")
psd.stop()
for w in ws:
    w.stop()
no_leftovers(env, job)
env.finish()
