"""bedtest.py — what the e2e tests on the bed (tests/e2e/test_hosts*.py)
share: the bed or a printed reason and exit 77 (ctest: skipped), job files
for it, and checks every run on it must pass."""
import os
import re
import sys
import time

import bed as bedmod
import jobs

# digits (1437 x 64, 10 classes), softmax regression: θ is 650 floats
# (2.6 kB). On links of RATE a sync round of 2 workers (5.2 kB into psd,
# then 5.2 kB out) takes about 11 ms, paced by the links rather than the
# CPU, so a job lasts about as long in the sanitizer build as in a plain one
# (an epoch of 45 rounds: about half a second). The problem is convex (l2) and
# the learning rate decays to 0, so an outage in the middle costs the final
# model little, as on a real job.
RATE = "8mbit"
SOFTMAX_FLOATS = 64 * 10 + 10
HEARTBEAT = {"interval_ms": 100, "timeout_ms": 1000}


def bed_or_skip(hosts, rate=RATE):
    """An up Bed of these hosts, or exit 77 with the reason printed."""
    why = bedmod.unavailable_reason()
    if why is None:
        b = bedmod.Bed(hosts, rate=rate)
        try:
            return b.up()
        except bedmod.Unavailable as e:
            b.down()
            why = str(e)
        except BaseException:
            b.down()
            raise
    print(f"skipped: {why}", flush=True)
    sys.exit(bedmod.SKIP)


def digits_job(env, name, servers, mode="sync", workers=2, epochs=30, model="softmax",
               heartbeat=None, extra="", cosine=True):
    """Text of a digits job (servers: endpoint list). Sync rounds per epoch:
    ceil(719 / 16) = 45; a cosine schedule to 0 over the whole job makes the
    end of the run settle the model whatever happened in the middle."""
    hb = heartbeat or HEARTBEAT
    steps = epochs * 45 * (workers if mode in ("async", "ssp") else 1)  # ssp: one per push
    shape = "model: {type: mlp, features: 64, classes: 10, hidden: [256], " \
            "init: {scheme: xavier, seed: 42}}" if model == "mlp" else \
            "model: {type: softmax, features: 64, classes: 10, init: {scheme: zeros}}"
    schedule = f"  schedule: {{type: cosine, total_steps: {steps}}}\n" if cosine else ""
    return f"""job: {name}
mode: {mode}
workers: {workers}
servers: [{", ".join(servers)}]
shared_memory: false
{shape}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer:
  type: sgd
  lr: 0.05
  l2: 0.003
{schedule}training: {{epochs: {epochs}, batch_size: 16, seed: 7}}
heartbeat: {{interval_ms: {hb['interval_ms']}, timeout_ms: {hb['timeout_ms']}}}
{extra}"""


def bed_servers(b, shards=1):
    return [f"tcp://{b.addr(f'psd{i}')}:{jobs.PORT}" for i in range(shards)]


def loopback_servers(free_port, shards=1):
    return [f"tcp://127.0.0.1:{free_port()}" for _ in range(shards)]


def check_no_shared_memory(env, j):
    """psd names every worker that used shared memory; on the bed none may."""
    users = bedmod.shared_memory_users(j.psd_log())
    env.check(not users, f"no worker used shared memory (psd names ranks {users})")


def check_link_carried(env, j, before, floats, updates):
    """Every update moved at least θ's bytes out of psd over its link (a pull
    of θ by each worker), so the bytes went across, not around, the bed."""
    rx, tx = j.psd_bytes()
    rx, tx = rx - before[0], tx - before[1]
    need = floats * 4 * updates
    env.check(rx >= need and tx >= need,
              f"psd's link carried {rx / 1e6:.1f} MB in and {tx / 1e6:.1f} MB out, "
              f">= {need / 1e6:.1f} MB each ({updates} updates of {floats} floats)")


def wait_until(pred, timeout_s, step_s=0.1):
    """True once pred() is true, False after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step_s)
    return bool(pred())


def count(pattern, text):
    return len(re.findall(pattern, text))


def show_tail(j, n=15):
    for p in j.psds + list(j.ws.values()):
        lines = p.text().splitlines()[-n:]
        print(f"--- {p.name} (last {len(lines)} lines)")
        for line in lines:
            print(f"[{p.name}] {line}")


def prog_path(env, name):
    return os.path.join(env.bin, name)
