"""conftest.py — fixtures of the Python package's tests: the build under
test ($PSD_BUILD, set by ctest; the package is imported from
$PSD_BUILD/python), job files on free loopback ports, and psd processes
started as tests/e2e/harness.py starts them, waited for with a bound and
killed by PID at the end of each test."""
import os
import socket
import subprocess
import sys
import threading

import pytest

BUILD = os.environ.get("PSD_BUILD") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
BUILD = os.path.abspath(BUILD)
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(SOURCE, "config", "examples", "data")
sys.path.insert(0, os.path.join(BUILD, "python"))

FAST_HB = "heartbeat: {interval_ms: 200, timeout_ms: 2000, deadline_ms: 5000}\n"


def prog(name):
    return os.path.join(BUILD, "bin", name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_text(name, mode="sync", workers=1, lr=0.1, port=None, extra="", epochs=2,
             model="type: logistic\n  features: 30"):
    port = port or free_port()
    return (f"job: {name}\nmode: {mode}\nworkers: {workers}\n"
            f"servers: [tcp://127.0.0.1:{port}]\n"
            f"model:\n  {model}\n  init: {{scheme: xavier, seed: 42}}\n"
            f"data:\n  train: {DATA}/breast_cancer.train.csv\n"
            f"  test: {DATA}/breast_cancer.test.csv\n"
            f"optimizer: {{type: sgd, lr: {lr}}}\n"
            f"training: {{epochs: {epochs}, batch_size: 32}}\n" + FAST_HB + extra)


class Psd:
    """psd on a job file, listening (or ended); killed by PID by stop()."""

    def __init__(self, job):
        self.p = subprocess.Popen([prog("psd"), "--config", job], stderr=subprocess.PIPE,
                                  text=True)
        self.lines = []
        ready = threading.Event()

        def read():
            for line in self.p.stderr:
                self.lines.append(line.rstrip("\n"))
                if "listening on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(20), "psd did not listen within 20 s"
        assert self.p.poll() is None, "psd ended: " + "\n".join(self.lines[-5:])

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


@pytest.fixture
def write_job(tmp_path):
    def write(text, name="job.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


@pytest.fixture
def start_psd():
    started = []

    def start(job):
        p = Psd(job)
        started.append(p)
        return p
    yield start
    for p in started:
        p.stop()


@pytest.fixture
def psd_pkg():
    import psd
    return psd
