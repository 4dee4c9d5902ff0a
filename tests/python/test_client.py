"""test_client.py — psd.Client against a real psd: pull, push, push_pull in
sync and async mode, θ's tensors as views, buffers checked before the C
library sees them."""
import numpy as np
import pytest

from conftest import job_text


def test_sync_pull_push_and_push_pull(psd_pkg, write_job, start_psd):
    psd = psd_pkg
    job = write_job(job_text("py-sync", lr=0.1))
    start_psd(job)
    with psd.Client(job, rank=0) as c:
        assert (c.num_params, c.rank, c.num_workers, c.mode) == (31, 0, 1, "sync")
        theta = c.pull()
        assert theta.dtype == np.float32 and theta.shape == (31,)
        assert c.version == 0 and c.clock == 0
        grad = np.full(31, 0.5, np.float32)
        c.push(grad, samples=32)  # sgd: θ1 = θ0 - 0.1 * 0.5
        theta1 = c.pull()
        assert c.version == 1
        np.testing.assert_allclose(theta1, theta - 0.05, rtol=0, atol=1e-6)
        theta2 = c.push_pull(grad, samples=32)
        assert c.version == 2 and c.clock == 2
        np.testing.assert_allclose(theta2, theta1 - 0.05, rtol=0, atol=1e-6)
        buf = np.zeros(31, np.float32)
        out = c.pull(out=buf)
        assert out is buf and np.array_equal(buf, theta2)


def test_async_two_workers(psd_pkg, write_job, start_psd):
    psd = psd_pkg
    job = write_job(job_text("py-async", mode="async", workers=2, lr=1.0))
    start_psd(job)
    with psd.Client(job, rank=0) as a, psd.Client(job, rank=1) as b:
        assert a.mode == "async" and {a.rank, b.rank} == {0, 1}
        t0 = a.pull()
        g = np.ones(31, np.float32)
        t1 = a.push_pull(g, samples=1)  # async: θ with this push applied
        np.testing.assert_allclose(t1, t0 - 1.0, atol=1e-6)
        b.push(g, samples=1)
        np.testing.assert_allclose(b.pull(), t0 - 2.0, atol=1e-6)


def test_tensors_and_views(psd_pkg, write_job, start_psd):
    psd = psd_pkg
    job = write_job(job_text("py-mlp", model="type: mlp\n  features: 30\n  classes: 2\n"
                                            "  hidden: [4]"))
    start_psd(job)
    with psd.Client(job) as c:
        assert [(t.name, t.shape, t.offset) for t in c.tensors] == [
            ("W1", (30, 4), 0), ("b1", (4,), 120), ("W2", (4, 2), 124), ("b2", (2,), 132)]
        theta = c.pull()
        views = c.tensor_views(theta)
        assert views["W2"].shape == (4, 2) and np.shares_memory(views["W2"], theta)
        views["b2"][:] = 7  # a view: θ's memory
        assert theta[132] == 7 and theta[133] == 7


def test_buffers_are_checked(psd_pkg, write_job, start_psd):
    psd = psd_pkg
    job = write_job(job_text("py-buf"))
    start_psd(job)
    with psd.Client(job) as c:
        with pytest.raises(psd.InvalidArgumentError, match="holds 30 floats"):
            c.push(np.zeros(30, np.float32), samples=1)
        with pytest.raises(psd.InvalidArgumentError, match="float32"):
            c.push(np.zeros(31, np.float64), samples=1)
        with pytest.raises(psd.InvalidArgumentError, match="C-contiguous"):
            c.pull(out=np.zeros(62, np.float32)[::2])
        with pytest.raises(psd.InvalidArgumentError) as e:
            c.push(np.zeros(30, np.float32), samples=1)
        assert e.value.code == psd.lib.PS_EINVAL and isinstance(e.value, psd.Error)
