"""harness.py — shared helpers of the end-to-end tests: free loopback ports,
job files written from a template, programs run under a timeout, and a check
that every process a test started is gone at its end. A test passes only by
running checks that pass: finish() fails one that ran none, and one that
ends without finish() after checking fails too; one that cannot run here
says why and exits SKIP, which ctest reports as skipped."""
import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


SKIP = 77  # the exit status ctest reports as skipped (SKIP_RETURN_CODE)


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--source", required=True)
    return p.parse_args()


class Env:
    """Paths of one test run: the programs, the data, a scratch folder."""

    def __init__(self):
        a = args()
        self.bin = os.path.join(a.build, "bin")
        self.source = a.source
        self.data = os.path.join(a.source, "config", "examples", "data")
        self.tmp = tempfile.mkdtemp(prefix="ps-e2e-")
        self.failures = 0
        self.checks = 0
        self.procs = []  # Proc objects, ended by stop_procs
        self.finished = False
        atexit.register(self._unfinished)

    def prog(self, name):
        return os.path.join(self.bin, name)

    def check(self, cond, what):
        self.checks += 1
        if cond:
            print(f"ok: {what}")
        else:
            self.failures += 1
            print(f"FAIL: {what}")

    def finish(self):
        """Ends the test: exit 0 when at least one check ran and all passed,
        else 1."""
        self.finished = True
        passed = self.checks - self.failures
        if self.failures == 0 and self.checks > 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"scratch files kept in {self.tmp}")
        print(f"{passed} passed, {self.failures} failed")
        if self.checks == 0:
            print("FAIL: no check ran: a test that checks nothing fails")
        sys.exit(1 if self.failures or self.checks == 0 else 0)

    def skip(self, why):
        """Ends a test that cannot run here (no root, an unoptimised build):
        the reason, then exit SKIP."""
        self.finished = True
        shutil.rmtree(self.tmp, ignore_errors=True)
        print(f"skipped: {why}", flush=True)
        sys.exit(SKIP)

    def _unfinished(self):
        """At exit: a script that checked things but never reached finish()
        (it forgot, or raised) must not pass with its failures unsaid."""
        if self.finished or self.checks == 0:
            return
        print(f"FAIL: the test ended before finish(): {self.checks - self.failures} passed, "
              f"{self.failures} failed, scratch files kept in {self.tmp}", flush=True)
        sys.stderr.flush()
        os._exit(1)


class Proc:
    """A program started in the background with stdout+stderr in a file of
    its own (env.tmp/NAME.log); env.procs keeps it so stop_procs ends it."""

    def __init__(self, env, name, cmd, **kw):
        self.name = name
        self.log = os.path.join(env.tmp, name + ".log")
        self.f = open(self.log, "w")
        self.p = subprocess.Popen(cmd, stdout=self.f, stderr=subprocess.STDOUT, **kw)
        env.procs.append(self)

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait(self, timeout_s):
        """The exit code, or None when it outlived timeout_s (then killed)."""
        try:
            return self.p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None

    def show(self):
        print(f"---- {self.name} (exit {self.p.returncode})")
        print("\n".join(self.text().splitlines()[-8:]))


def stop_procs(env):
    """Kills (by PID) every Proc of env still running and closes its log."""
    for p in env.procs:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()
        p.f.close()


def wait_for(pred, timeout_s, what):
    """Polls pred every 50 ms; False (and says so) when timeout_s passed."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    print(f"timed out waiting for {what}")
    return False


def psd_listening(env, job_path, timeout_s=30):
    """Starts psd on a job (shard 0) and waits until it listens (or ends, or
    timeout_s passed); its stderr lines are gathered as they come. Returns
    (the Popen, the list of lines so far, the reading thread)."""
    p = subprocess.Popen([env.prog("psd"), "--config", job_path], stderr=subprocess.PIPE,
                         text=True)
    lines = []
    ready = threading.Event()

    def read():
        for line in p.stderr:
            lines.append(line.rstrip("\n"))
            if "listening on" in line:
                ready.set()
        ready.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    ready.wait(timeout_s)
    return p, lines, t


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_yaml(env, name, mode="sync", workers=2, shards=1, epochs=20, batch_size=32, lr=0.1,
             init="xavier", output=None, fmt="csv", model="logistic", extra=""):
    """Text of a job file for breast_cancer on free loopback ports."""
    servers = ", ".join(f"tcp://127.0.0.1:{free_port()}" for _ in range(shards))
    ext = "csv" if fmt == "csv" else "libsvm"
    out = f"output: {output}\n" if output else ""
    return f"""job: {name}
mode: {mode}
workers: {workers}
servers: [{servers}]
model:
  type: {model}
  features: 30
  init: {{scheme: {init}, seed: 42}}
data:
  train: {env.data}/breast_cancer.train.{ext}
  test: {env.data}/breast_cancer.test.{ext}
  format: {fmt}
  normalize: standard
optimizer:
  type: sgd
  lr: {lr}
training:
  epochs: {epochs}
  batch_size: {batch_size}
  seed: 7
{out}{extra}"""


def write(env, filename, text):
    path = os.path.join(env.tmp, filename)
    with open(path, "w") as f:
        f.write(text)
    return path


def processes_mentioning(text):
    """PIDs of processes whose command line contains text."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and int(d) != os.getpid():
            pids.append(int(d))
    return pids


def run(cmd, timeout_s, **kw):
    """Runs cmd; kills its whole process group if it outlives timeout_s.
    Returns (exit code or None on timeout, stdout, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout_s)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, out, err


def psrun(env, job_path, timeout_s=240, summary=True):
    """Runs psrun on a job; returns (code, summary dict or None, stderr)."""
    cmd = [env.prog("psrun"), job_path]
    summary_path = job_path + ".summary.json"
    if summary:
        cmd[1:1] = ["--summary-json", summary_path]
    t0 = time.monotonic()
    code, out, err = run(cmd, timeout_s)
    dt = time.monotonic() - t0
    sys.stdout.write(out)
    tail = "\n".join(err.splitlines()[-15:])
    print(f"psrun {os.path.basename(job_path)}: exit {code} in {dt:.1f} s\n{tail}")
    data = None
    if summary and code == 0 and os.path.exists(summary_path):
        with open(summary_path) as f:
            data = json.load(f)
    return code, data, err


def no_leftovers(env, job_path):
    """Kills (by PID) and reports any process still running on job_path."""
    left = processes_mentioning(job_path)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    env.check(not left, f"no process left running on {os.path.basename(job_path)}")


def read_npy(path):
    """float32 array of a .npy file written by psworker, via numpy."""
    import numpy as np
    return np.load(path)


def model_job_yaml(name, train, test, model, features, mode="sync", workers=2, classes=None,
                   hidden=None, fmt="csv", epochs=30, batch_size=16, lr=0.05, l2=0.003,
                   output=None, seed=7, extra=""):
    """Text of a job file for any data set and built-in model on a free port."""
    lines = [f"job: {name}", f"mode: {mode}", f"workers: {workers}",
             f"servers: [tcp://127.0.0.1:{free_port()}]",
             "model:", f"  type: {model}", f"  features: {features}"]
    if classes is not None:
        lines.append(f"  classes: {classes}")
    if hidden is not None:
        lines.append(f"  hidden: [{', '.join(str(h) for h in hidden)}]")
    lines += ["  init: {scheme: xavier, seed: 42}",
              "data:", f"  train: {train}", f"  test: {test}", f"  format: {fmt}",
              "  normalize: standard",
              "optimizer:", "  type: sgd", f"  lr: {lr}", f"  l2: {l2}",
              "training:", f"  epochs: {epochs}", f"  batch_size: {batch_size}", f"  seed: {seed}"]
    if output:
        lines.append(f"output: {output}")
    return "\n".join(lines) + "\n" + extra


def sanitizer_preload(env):
    """For a sanitizer build: the runtimes python3 must load first to load
    its libpsworker (LD_PRELOAD's value, as the compiler names them); ""
    for another build."""
    sanitizers = build_option(env, "PS_SANITIZER")
    if not sanitizers:
        return ""
    cc = build_option(env, "CMAKE_C_COMPILER") or "cc"
    files = []
    for word, rt in (("address", "libasan.so"), ("undefined", "libubsan.so")):
        if word in sanitizers:
            path = subprocess.run([cc, f"-print-file-name={rt}"], capture_output=True,
                                  text=True, timeout=30).stdout.strip()
            env.check(os.path.isfile(path), f"{cc} names {rt} for the sanitizer build: {path}")
            files.append(path)
    return " ".join(files)


def torch_workers(env):
    """Readies this process's environment for psrun's Python (PyTorch)
    workers, which inherit it: in a sanitizer build the runtimes first in
    python3 (whose own leaks at exit are not ours); skips (77) without
    python3-torch, python3-yaml or python3-cffi."""
    preload = sanitizer_preload(env)
    if preload:
        os.environ["LD_PRELOAD"] = preload
        os.environ["ASAN_OPTIONS"] = "detect_leaks=0"
    if subprocess.run([sys.executable, "-c", "import torch, yaml, cffi"],
                      capture_output=True).returncode != 0:
        env.skip("python3-torch, python3-yaml or python3-cffi is not installed")


def build_option(env, name):
    """The value of a CMake cache entry of the build under test ("" if unset)."""
    cache = os.path.join(os.path.dirname(env.bin), "CMakeCache.txt")
    try:
        with open(cache) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""
