"""test_inputs.py — inputs that used to hang or burn resources are refused
at once in one line: a FIFO or a device as a data or job path (psworker and
psd alike), a job file nested 100 000 deep, an output or checkpoint folder
that cannot be written (found when the job loads, not after the run); a
worker reading a big data file stops within seconds of SIGTERM; a job with
more workers than rows says so."""
import os
import signal
import subprocess
import time

from harness import Env, job_yaml, run, write

env = Env()
# every refusal below is immediate; this bound only keeps a hang from
# blocking the test (the bug it guards against: psd blocked for good)
REFUSE_S = 20


def refused(prog, job, want, what):
    """prog --config job exits 2 within REFUSE_S with one line holding every
    string of want."""
    cmd = [env.prog(prog), "--config", job]
    if prog == "psworker":
        cmd += ["--rank", "0"]
    t0 = time.monotonic()
    code, _, err = run(cmd, REFUSE_S)
    took = time.monotonic() - t0
    lines = err.strip().splitlines()
    env.check(code == 2 and len(lines) == 1 and all(w in err for w in want),
              f"{prog}: {what}: exit {code} in {took:.1f} s: {err.strip()}")


def job_with_train(name, train, extra=""):
    text = job_yaml(env, name, extra=extra)
    text = text.replace(f"  train: {env.data}/breast_cancer.train.csv", f"  train: {train}")
    return write(env, name + ".yaml", text)


# ---- a FIFO or a device as a data path: refused unread by both programs ----
fifo = os.path.join(env.tmp, "train.fifo")
os.mkfifo(fifo)
job = job_with_train("fifo-data", fifo)
for prog in ("psworker", "psd"):
    refused(prog, job, [f"{job}:", "data.train:", fifo, "is a FIFO, not a file"],
            "a FIFO as data.train is refused at once")
job = job_with_train("zero-data", "/dev/zero")
for prog in ("psworker", "psd"):
    refused(prog, job, [f"{job}:", "data.train: /dev/zero is a character device, not a file"],
            "/dev/zero as data.train is refused at once")

# ---- a FIFO or a device as the job file ----
job_fifo = os.path.join(env.tmp, "job.fifo")
os.mkfifo(job_fifo)
for prog in ("psworker", "psd"):
    refused(prog, job_fifo, [f"{job_fifo}: is a FIFO, not a job file"],
            "a FIFO as the job file is refused at once")
    refused(prog, "/dev/zero", ["/dev/zero: is a character device, not a job file"],
            "/dev/zero as the job file is refused at once")

# ---- a job file of 100 000 nested "[" (it took 37 s) ----
deep = write(env, "deep.yaml", "[" * 100000 + "]" * 100000 + "\n")
refused("psd", deep, [f"{deep}:1:65: mappings and lists nested more than 64 deep"],
        "a job file nested 100 000 deep is refused naming line:col")

# ---- output and checkpoint folders that cannot be written ----
# the tests run as root: "cannot write" comes from a file in the way or /proc
plain = write(env, "plain", "not a folder\n")
job = write(env, "bad-output.yaml", job_yaml(env, "bad-output", output=plain + "/out"))
refused("psworker", job,
        [f"{job}:", f"output: {plain}/out: cannot write there: Not a directory"],
        "an output folder below a file is refused at start")
job = write(env, "file-output.yaml", job_yaml(env, "file-output", output=plain))
refused("psworker", job, [f"output: {plain} is a regular file, not a folder"],
        "an output that is a file is refused at start")
job = write(env, "proc-output.yaml", job_yaml(env, "proc-output", output="/proc/x"))
refused("psworker", job, ["output: /proc/x: cannot write there: No such file or directory"],
        "an output under /proc is refused at start")
for bad, why in ((plain + "/ckpt", "cannot write there: Not a directory"),
                 (plain, "is a regular file, not a folder"),
                 ("/proc/ckpt", "cannot write there: No such file or directory")):
    job = write(env, "bad-ckpt.yaml",
                job_yaml(env, "bad-ckpt", extra=f"checkpoint: {{dir: {bad}}}\n"))
    refused("psd", job, [f"{job}:", f"checkpoint.dir: {bad}", why],
            f"psd refuses checkpoint.dir {bad} at start")
# a good folder that does not exist yet is made, and nothing is left in it
made = os.path.join(env.tmp, "made", "out")
job = write(env, "made-output.yaml", job_yaml(env, "made-output", output=made))
code, out, err = run([env.prog("psworker"), "--config", job, "--describe"], REFUSE_S)
env.check(code == 0 and os.path.isdir(made) and os.listdir(made) == [],
          f"a missing output folder is made at start and left empty: exit {code} {err.strip()}")

# ---- more workers than rows ----
tiny = write(env, "tiny.csv", "1," + ",".join(["0.5"] * 30) + "\n"
             + "0," + ",".join(["0.1"] * 30) + "\n" + "1," + ",".join(["0.2"] * 30) + "\n")
job = job_with_train("tiny", tiny)
with open(job) as f:
    text = f.read().replace("workers: 2", "workers: 4")
with open(job, "w") as f:
    f.write(text)
code, _, err = run([env.prog("psworker"), "--config", job, "--rank", "0"], REFUSE_S)
env.check(code == 1 and len(err.strip().splitlines()) == 1
          and f"{tiny}: 3 rows are fewer than the job's 4 workers" in err,
          f"a job with more workers than rows says so: exit {code}: {err.strip()}")

# ---- SIGTERM while reading a big data file ----
# ~150 MB of CSV: seconds of parsing, so the signal lands mid-read (the
# bound of 10 s is loose; the message shows the read itself stopped)
big = os.path.join(env.tmp, "big.csv")
with open(os.path.join(env.data, "breast_cancer.train.csv")) as f:
    block = f.read()
if not block.endswith("\n"):
    block += "\n"
with open(big, "w") as f:
    for _ in range(150 * (1 << 20) // len(block)):
        f.write(block)
job = job_with_train("big", big)
p = subprocess.Popen([env.prog("psworker"), "--config", job, "--rank", "0"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                     start_new_session=True)
# wait (bounded) until the worker has the big file open, then stop it
opened = False
deadline = time.monotonic() + REFUSE_S
while time.monotonic() < deadline and p.poll() is None and not opened:
    try:
        opened = any(os.readlink(f"/proc/{p.pid}/fd/{fd}") == big
                     for fd in os.listdir(f"/proc/{p.pid}/fd"))
    except OSError:
        pass
    if not opened:
        time.sleep(0.01)
env.check(opened, "psworker opens the big data file")
t0 = time.monotonic()
p.send_signal(signal.SIGTERM)
try:
    _, err = p.communicate(timeout=10)
    took = time.monotonic() - t0
    env.check(p.returncode == 1 and "reading interrupted" in err,
              f"psworker reading a big file exits on SIGTERM: exit {p.returncode} "
              f"in {took:.1f} s: {err.strip()}")
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    env.check(False, "psworker reading a big file exits within 10 s of SIGTERM")
os.unlink(big)
env.finish()
