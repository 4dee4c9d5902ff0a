"""test_psrun.py — psrun's failure paths: a bad job file exits 2 naming
file:line:col, a worker that fails makes psrun exit 1 and stop the rest, a
port in use is reported, and SIGINT stops everything cleanly."""
import os
import signal
import socket
import subprocess
import time

from harness import Env, free_port, job_yaml, no_leftovers, psrun, run, write

env = Env()

# a bad job file: refused before anything starts
bad = write(env, "bad.yaml", job_yaml(env, "bad").replace("  lr: 0.1", "  lr: -0.5"))
code, _, err = psrun(env, bad, timeout_s=30)
env.check(code == 2, "bad job file: psrun exits 2")
env.check(f"{bad}:" in err and "lr" in err, "bad job file: the error names the file and lr")

# a malformed data line makes every worker fail: psrun stops the job, exits 1
rows = open(os.path.join(env.data, "breast_cancer.train.csv")).read().splitlines()
rows[10] = rows[10].replace(",", ",abc,", 1)
broken = write(env, "broken.csv", "\n".join(rows) + "\n")
text = job_yaml(env, "broken").replace(os.path.join(env.data, "breast_cancer.train.csv"), broken)
job = write(env, "broken.yaml", text)
code, _, err = psrun(env, job, timeout_s=60)
env.check(code == 1, "worker failure: psrun exits 1")
env.check("broken.csv:11:" in err, "worker failure: the data error names broken.csv:11")
env.check("job failed" in err, "worker failure: psrun says the job failed")
no_leftovers(env, job)

# a port already in use: the server cannot bind, psrun exits 1 and says why
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    text = job_yaml(env, "busy")
    text = text.replace(text.split("servers: [")[1].split("]")[0], f"tcp://127.0.0.1:{port}")
    job = write(env, "busy.yaml", text)
    code, _, err = psrun(env, job, timeout_s=60)
    env.check(code == 1, "port in use: psrun exits 1")
    env.check("Address already in use" in err, "port in use: the error says so")
    no_leftovers(env, job)

# SIGINT in the middle of a long job: every process stops, exit 130
job = write(env, "long.yaml", job_yaml(env, "long", epochs=100000, batch_size=1))
p = subprocess.Popen([env.prog("psrun"), job], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True, start_new_session=True)
time.sleep(3)
p.send_signal(signal.SIGINT)
try:
    _, err = p.communicate(timeout=30)
    env.check(p.returncode == 130, f"SIGINT: psrun exits 130 (got {p.returncode})")
    env.check("interrupted" in err, "SIGINT: psrun says it was interrupted")
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    env.check(False, "SIGINT: psrun stops within 30 s")
time.sleep(0.5)
no_leftovers(env, job)
env.finish()
