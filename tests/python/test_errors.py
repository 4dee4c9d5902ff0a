"""test_errors.py — every failure is a psd.Error subclass with the C code
and the library's sentence: a bad job file, another job's server, no
server at all (a timeout within the job's deadline), and Ctrl-C during a
wait that psd never answers."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import BUILD, job_text


def test_bad_job_file_is_a_config_error(psd_pkg, write_job):
    psd = psd_pkg
    job = write_job(job_text("py-bad").replace("lr: 0.1", "lrate: 0.1"))
    with pytest.raises(psd.ConfigError) as e:
        psd.Client(job)
    assert e.value.code == psd.lib.PS_ECONFIG
    assert "job.yaml" in str(e.value) and "lrate" in str(e.value)


def test_another_jobs_server_is_a_job_error(psd_pkg, write_job, start_psd):
    psd = psd_pkg
    text = job_text("py-right")
    start_psd(write_job(text, "right.yaml"))
    wrong = write_job(text.replace("job: py-right", "job: py-wrong"), "wrong.yaml")
    with pytest.raises(psd.JobError) as e:
        psd.Client(wrong)
    assert e.value.code == psd.lib.PS_EJOB and e.value.name == "PS_EJOB"
    assert str(e.value)


def test_no_server_times_out_within_the_deadline(psd_pkg, write_job):
    psd = psd_pkg
    job = write_job(job_text("py-none").replace("deadline_ms: 5000", "deadline_ms: 1000"))
    t0 = time.monotonic()
    with pytest.raises(psd.TimeoutError) as e:
        psd.Client(job)
    took = time.monotonic() - t0
    assert e.value.code == psd.lib.PS_ETIMEDOUT and isinstance(e.value, TimeoutError)
    assert 0.9 <= took < 4, f"gave up after {took:.1f} s, the deadline is 1 s"
    assert "127.0.0.1" in str(e.value)


WAITER = r'''
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
import psd
c = psd.Client(sys.argv[1], rank=0)
c.pull()
c.push(np.zeros(c.num_params, np.float32), samples=1)  # round 0: worker 1 never comes
print("waiting", flush=True)
try:
    c.pull()  # the θ of round 1: never
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(130)
print("pulled", flush=True)
'''


def test_ctrl_c_during_a_wait_raises_keyboard_interrupt(write_job, start_psd, tmp_path):
    job = write_job(job_text("py-wait", workers=2))
    start_psd(job)
    script = tmp_path / "waiter.py"
    script.write_text(WAITER)
    p = subprocess.Popen([sys.executable, str(script), job, os.path.join(BUILD, "python")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "waiting"
        time.sleep(0.5)  # inside the C library's wait
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        code = p.wait(timeout=5)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = p.stdout.read()
    assert code == 130 and "KeyboardInterrupt" in out, p.stderr.read()
    assert took < 2, f"exited {took:.1f} s after SIGINT"
