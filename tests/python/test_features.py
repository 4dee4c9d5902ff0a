"""test_features.py — job-file features through ps_client_open_job: the
three modes with compressed pushes and pulls, shared memory with a psd on
this host (and sockets only when the job says so), and a sparse table's
rows by key."""
import numpy as np
import pytest

from conftest import job_text


@pytest.mark.parametrize("mode", ["sync", "async", "ssp"])
def test_modes_with_compression_and_shared_memory(psd_pkg, write_job, start_psd, mode):
    psd = psd_pkg
    extra = "compression: {push: fp16, pull: bf16}\n" + ("staleness: 1\n" if mode == "ssp" else "")
    job = write_job(job_text(f"py-{mode}", mode=mode, lr=1.0, extra=extra))
    start_psd(job)
    with psd.Client(job) as c:
        assert c.mode == mode
        assert c.shared_memory() == (1, "")
        t0 = c.pull()
        theta = t0.copy()
        for _ in range(3):
            theta = c.push_pull(np.full(c.num_params, 0.25, np.float32), samples=1, out=theta)
        # 3 steps of lr 1 × 0.25 (exact in fp16), θ sent back in bf16
        np.testing.assert_allclose(theta, t0 - 0.75, atol=0.02)
        c.push(np.zeros(c.num_params, np.float32), samples=1)
        c.done()


def test_socket_only_when_the_job_says_so(psd_pkg, write_job, start_psd):
    psd = psd_pkg
    job = write_job(job_text("py-noshm", extra="shared_memory: false\n"))
    start_psd(job)
    with psd.Client(job) as c:
        assert c.shared_memory()[0] == 0


def test_sparse_rows(psd_pkg, write_job, start_psd, tmp_path):
    psd = psd_pkg
    data = tmp_path / "clicks.libsvm"
    data.write_text("1 1:1 5:1\n0 9:1\n")
    job = write_job(f"""job: py-sparse
mode: async
workers: 1
servers: [tcp://127.0.0.1:{__import__('conftest').free_port()}]
model: {{type: sparse_logistic}}
data: {{train: {data}, format: libsvm64}}
optimizer: {{type: sgd, lr: 0.5}}
heartbeat: {{interval_ms: 200, timeout_ms: 2000, deadline_ms: 5000}}
""")
    start_psd(job)
    with psd.Client(job) as c:
        assert c.tables == [psd.Table("w", 1)]
        keys = np.array([1, 5, 2**63 + 9], np.uint64)
        r0 = c.pull_rows("w", keys)
        assert r0.shape == (3, 1) and r0.dtype == np.float32
        c.push_rows(0, keys, np.ones((3, 1), np.float32), samples=1)
        r1 = c.pull_rows("w", keys)
        np.testing.assert_allclose(r1, r0 - 0.5, atol=1e-6)
        with pytest.raises(psd.InvalidArgumentError):
            c.pull_rows("w", np.array([5, 1], np.uint64))  # not increasing
        with pytest.raises(psd.InvalidArgumentError, match="uint64"):
            c.pull_rows("w", np.array([1, 5], np.int64))
