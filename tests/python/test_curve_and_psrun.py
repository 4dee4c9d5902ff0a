"""test_curve_and_psrun.py — the package with a CURVE job (keys from psctl
keygen, read from the job file by ps_client_open_job), and Python workers
started by psrun from the job's worker.command, rank from PSD_RANK."""
import os
import subprocess

import numpy as np

from conftest import BUILD, job_text, prog


def keygen(folder, name):
    subprocess.run([prog("psctl"), "keygen", os.path.join(folder, name)], check=True,
                   capture_output=True, timeout=30)


def test_curve_job(psd_pkg, write_job, start_psd, tmp_path):
    psd = psd_pkg
    keys = tmp_path / "keys"
    (keys / "workers").mkdir(parents=True)
    for n in ("psd", "worker", "intruder"):
        keygen(str(keys), n)
    os.link(keys / "worker.key", keys / "workers" / "worker.key")

    def curve(client):
        return (f"security:\n  curve:\n"
                f"    server_secret_key: {keys}/psd.key_secret\n"
                f"    server_public_key: {keys}/psd.key\n"
                f"    client_secret_key: {keys}/{client}.key_secret\n"
                f"    authorized_workers: {keys}/workers/\n")
    text = job_text("py-curve", lr=1.0, extra=curve("worker"))
    job = write_job(text)
    start_psd(job)
    with psd.Client(job) as c:
        t0 = c.pull()
        t1 = c.push_pull(np.ones(c.num_params, np.float32), samples=1)
        np.testing.assert_allclose(t1, t0 - 1, atol=1e-6)
    # a key psd does not admit: no answer, a timeout within the deadline
    bad = write_job(text.replace(curve("worker"), curve("intruder"))
                    .replace("deadline_ms: 5000", "deadline_ms: 1000"), "intruder.yaml")
    try:
        psd.Client(bad)
        assert False, "an unlisted key was let in"
    except psd.TimeoutError as e:
        assert e.code == psd.lib.PS_ETIMEDOUT


WORKER = r'''
import numpy as np, os, psd
with psd.Client(os.environ["PSD_JOB"]) as c:  # rank from PSD_RANK
    theta = c.pull()
    for step in range(5):
        theta = c.push_pull(np.full(c.num_params, 0.1, np.float32), samples=1)
    c.done()
    print(f"rank {c.rank} of {c.num_workers}: version {c.version}", flush=True)
'''


def test_psrun_starts_python_workers(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "w.py").write_text(WORKER)
    text = job_text("py-psrun", workers=2) + "worker: {command: [/usr/bin/python3, w.py]}\n"
    (folder / "job.yaml").write_text(text)
    env = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "python"))
    r = subprocess.run([prog("psrun"), str(folder / "job.yaml")], capture_output=True, text=True,
                       timeout=90, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "[w0] rank 0 of 2: version 5" in r.stderr
    assert "[w1] rank 1 of 2: version 5" in r.stderr
    assert "psrun: py-psrun done in" in r.stdout
