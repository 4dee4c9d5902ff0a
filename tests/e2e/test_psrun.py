"""test_psrun.py — psrun's failure paths: a bad job file exits 2 naming
file:line:col (as psrun), a worker that fails makes psrun exit 1 and stop the
rest, a port in use is reported, and SIGINT stops everything cleanly. And
what psrun learns without reading logs: the quick job finishes at every log
level (readiness comes from sd_notify), the summary is JSON with null for a
loss that is not finite, a diverged job exits 1 with the reason in one line,
and workers that all fail are named once."""
import json
import os
import re
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
env.check(f"psrun: {bad}:" in err and "psworker:" not in err,
          "bad job file: psrun reports it as psrun, not psworker")

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


def line_job(name, level=None, extra=""):
    """config/examples/line.yaml on a free port, its data path absolute."""
    with open(os.path.join(env.source, "config", "examples", "line.yaml")) as f:
        text = f.read()
    text = re.sub(r"tcp://127\.0\.0\.1:\d+", f"tcp://127.0.0.1:{free_port()}", text)
    text = text.replace("data/line.csv", os.path.join(env.data, "line.csv"))
    text = re.sub(r"(?m)^job: .*$", f"job: {name}", text)
    if level is not None:
        text = re.sub(r"(?m)^log:.*\n", "", text) + f"log: {{level: {level}}}\n"
    return write(env, f"{name}.yaml", text + extra)


def strict_json(path):
    """The file as JSON, refusing NaN and Infinity (Python's json takes them)."""
    def refuse(const):
        raise ValueError(f"{const} is not JSON")
    with open(path) as f:
        return json.load(f, parse_constant=refuse)


# the quick job finishes at every log level: psrun learns that a shard is up
# from its READY=1 (sd_notify), not from an info line in its log
for level in ("error", "warn", "info", "debug"):
    job = line_job(f"line-{level}", level)
    code, summary, err = psrun(env, job, timeout_s=90)
    env.check(code == 0 and summary is not None and summary["version"] == 200,
              f"log level {level}: psrun finishes the quick job (exit {code})")
    env.check("READY" not in err, f"log level {level}: no server start timeout")
    no_leftovers(env, job)

# a loss that is not finite (on_divergence: continue): the summary is JSON
# with null for it, and psrun's own line says nan, not -nan
job = line_job("nonfinite", extra="on_divergence: continue\n")
with open(job) as f:
    text = f.read().replace("lr: 0.5", "lr: 1e30")
write(env, "nonfinite.yaml", text)
summary_path = job + ".summary.json"
code, out, err = run([env.prog("psrun"), "--summary-json", summary_path, job], 90)
print(out + "\n".join(err.splitlines()[-5:]))
env.check(code == 0, f"diverged, on_divergence continue: psrun exits 0 (got {code})")
try:
    s = strict_json(summary_path)
    env.check(s["final_loss"] is None and s["metrics"]["mse"] is None,
              "diverged: the summary holds null for the loss")
    env.check("test_auc" not in s and not any("auc" in k for k in s["metrics"]),
              "linear regression: the summary has no auc at all (absent, not 0)")
except (OSError, ValueError) as e:
    env.check(False, f"diverged: the summary parses as strict JSON ({e})")
own = [ln for ln in (out + err).splitlines() if ln.startswith("psrun:")]
env.check(any("final loss nan" in ln for ln in own), "diverged: psrun's line says final loss nan")
env.check(not any("-nan" in ln for ln in own), "diverged: no -nan in psrun's own lines")
no_leftovers(env, job)

# the same with on_divergence: stop (the default): psrun exits 1 and its
# last line gives the reason
job = write(env, "line-diverge.yaml", text.replace("on_divergence: continue\n", ""))
t0 = time.monotonic()
code, _, err = psrun(env, job, timeout_s=90)
last = err.strip().splitlines()[-1] if err.strip() else ""
env.check(code == 1, f"diverged, on_divergence stop: psrun exits 1 (got {code})")
env.check(last.startswith("psrun: job failed: ") and "diverged" in last,
          f"diverged: psrun's last line gives the reason ({last!r})")
env.check("goes on without" not in err, "diverged: psrun does not say the job goes on")
env.check(time.monotonic() - t0 < 60, "diverged: psrun ends within 60 s")
no_leftovers(env, job)

# more workers than rows: every worker fails the same way; psrun says so once
rows = open(os.path.join(env.data, "line.csv")).read().splitlines()[:3]
tiny = write(env, "tiny.csv", "\n".join(rows) + "\n")
with open(line_job("tiny")) as f:
    text = f.read()
text = text.replace(os.path.join(env.data, "line.csv"), tiny).replace("workers: 1", "workers: 5")
job = write(env, "tiny.yaml", text)
code, _, err = psrun(env, job, timeout_s=90)
env.check(code == 1, f"more workers than rows: psrun exits 1 (got {code})")
env.check(err.count("goes on without") == 0,
          "more workers than rows: psrun does not say the job goes on without them")
failed = [ln for ln in err.splitlines() if ln.startswith("psrun: job failed:")]
env.check(len(failed) == 1 and all(f"w{i}" in failed[0] for i in range(5)),
          f"more workers than rows: one line names the 5 workers ({failed})")
no_leftovers(env, job)
env.finish()
