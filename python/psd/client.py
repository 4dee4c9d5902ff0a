"""client.py — psd.Client: one worker's connection to a job's servers,
opened from the job file (ps_client_open_job: servers, name, timeouts,
CURVE keys, compression and shared memory as psworker reads them). θ and
gradients are NumPy float32 arrays handed to the C library without a copy
(ffi.from_buffer), kept alive until the call returns."""
import collections
import os

import numpy as np

from ._lib import ffi, lib, CONSTANTS
from .errors import Error, InvalidArgumentError, error_for

PS_EINTR = CONSTANTS["PS_EINTR"]
VERSION_FINAL = CONSTANTS["PS_CLIENT_VERSION_FINAL"]
_ERRBUF = 1024

Tensor = collections.namedtuple("Tensor", "name shape offset size")
Table = collections.namedtuple("Table", "name dim")


def _signals():
    """Entering a Python function runs the signal handlers the C call left
    pending: SIGINT's raises KeyboardInterrupt here."""
    return None


def _floats(a, n, what, writable=False):
    """a as float[] for C, refused unless float32, C-contiguous, n long."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or not a.flags.c_contiguous:
        raise InvalidArgumentError(CONSTANTS["PS_EINVAL"],
                                   f"{what} must be a C-contiguous float32 ndarray")
    if a.size != n:
        raise InvalidArgumentError(CONSTANTS["PS_EINVAL"], f"{what} holds {a.size} floats, "
                                   f"expected {n}")
    if writable and not a.flags.writeable:
        raise InvalidArgumentError(CONSTANTS["PS_EINVAL"], f"{what} is read-only")
    return ffi.from_buffer("float[]", a, require_writable=writable)


def _keys(keys):
    if not isinstance(keys, np.ndarray) or keys.dtype != np.uint64 or not keys.flags.c_contiguous \
            or keys.ndim != 1:
        raise InvalidArgumentError(CONSTANTS["PS_EINVAL"],
                                   "keys must be a 1-d C-contiguous uint64 ndarray")
    return ffi.from_buffer("uint64_t[]", keys)


class Client:
    """A worker of the job in the file `job` (a path). rank: None takes
    $PSD_RANK when set (psrun sets it), else any free rank."""

    def __init__(self, job, rank=None):
        self._c = ffi.NULL
        pp = ffi.new("ps_client **")
        errbuf = ffi.new("char[]", _ERRBUF)
        r = -1 if rank is None else int(rank)
        rc = self._retry(lambda: lib.ps_client_open_job(os.fsencode(job), r, pp, errbuf, _ERRBUF),
                         safe=True)
        if rc != 0:
            raise error_for(rc, ffi.string(errbuf).decode(errors="replace"))
        self._c = pp[0]
        self.job = os.path.abspath(job)
        self.num_params = int(lib.ps_client_num_params(self._c))
        self.rank = int(lib.ps_client_rank(self._c))
        self.num_workers = int(lib.ps_client_num_workers(self._c))
        self.num_servers = int(lib.ps_client_num_servers(self._c))
        self.mode = ffi.string(lib.ps_client_mode(self._c)).decode()
        self.tensors = self._read_tensors()
        self.tables = self._read_tables()
        # the worker's clock (psworker's round): sync starts at the version
        # the servers are at, async and ssp at the pushes they hold of it
        if self.mode == "sync":
            self.clock = int(lib.ps_client_rejoin_version(self._c))
        else:
            self.clock = int(lib.ps_client_rank_applied(self._c))
        self.version = None  # of the θ last pulled

    # ---- the job ----

    def _read_tensors(self):
        out = []
        name, off = ffi.new("char **"), ffi.new("uint64_t *")
        shape, nd = ffi.new("uint64_t **"), ffi.new("uint32_t *")
        for i in range(lib.ps_client_num_tensors(self._c)):
            self._check(lib.ps_client_tensor(self._c, i, name, off, shape, nd))
            dims = tuple(int(shape[0][k]) for k in range(nd[0]))
            out.append(Tensor(ffi.string(name[0]).decode(), dims, int(off[0]),
                              int(np.prod(dims, dtype=np.int64))))
        return out

    def _read_tables(self):
        out = []
        name, dim = ffi.new("char **"), ffi.new("uint32_t *")
        for i in range(lib.ps_client_num_tables(self._c)):
            self._check(lib.ps_client_table(self._c, i, name, dim))
            out.append(Table(ffi.string(name[0]).decode(), int(dim[0])))
        return out

    def tensor_views(self, theta):
        """{name: view of theta shaped as the tensor}; no copies."""
        if theta.size != self.num_params:
            raise InvalidArgumentError(CONSTANTS["PS_EINVAL"], f"theta holds {theta.size} "
                                       f"floats, θ has {self.num_params}")
        flat = theta.reshape(-1)
        return {t.name: flat[t.offset:t.offset + t.size].reshape(t.shape) for t in self.tensors}

    # ---- errors and signals ----

    def _open(self):
        if self._c == ffi.NULL:
            raise Error(CONSTANTS["PS_ESTATE"], "the client is closed")
        return self._c

    def _check(self, rc):
        if rc != 0:
            msg = ffi.string(lib.ps_client_last_error(self._c)).decode(errors="replace") \
                if self._c != ffi.NULL else ""
            raise error_for(rc, msg)
        return rc

    @staticmethod
    def _retry(call, safe):
        """call() until it returns anything but PS_EINTR: a signal came
        while the C library waited; its Python handler runs here (SIGINT's
        raises KeyboardInterrupt). A call that is not safe to send again (a
        push) returns PS_EINTR to its caller instead."""
        while True:
            rc = call()
            if rc != PS_EINTR:
                return rc
            _signals()
            if not safe:
                return rc

    # ---- θ ----

    def pull(self, out=None, min_version=None):
        """θ as a float32 array (out when given, filled in place): in sync
        mode that of the worker's round (the clock), in ssp within
        staleness of the clock, in async the servers' latest."""
        c = self._open()
        theta = np.empty(self.num_params, np.float32) if out is None else out
        buf = _floats(theta, self.num_params, "out", writable=True)
        ver = ffi.new("uint64_t *")
        if min_version is None:
            min_version = self.clock if self.mode == "sync" else 0
        clock = self.clock if self.mode == "ssp" else 0
        self._check(self._retry(lambda: lib.ps_client_pull_clock(
            c, clock, min_version, buf, self.num_params, ver), safe=True))
        self.version = int(ver[0])
        if self.mode == "sync" and min_version != VERSION_FINAL and self.version > self.clock:
            self.clock = self.version  # rounds closed without this worker (backup workers)
        return theta

    def push(self, grad, samples):
        """Pushes a gradient over θ (float32, num_params, C-contiguous),
        averaged over `samples` examples, at the worker's clock; the clock
        then moves on by one. Returns the smallest shard version after it."""
        c = self._open()
        buf = _floats(grad, self.num_params, "grad")
        ver = ffi.new("uint64_t *")
        self._check(self._retry(lambda: lib.ps_client_push(
            c, self.clock, buf, self.num_params, int(samples), ver), safe=False))
        self.clock += 1
        return int(ver[0])

    def push_pull(self, grad, samples, out=None):
        """push(grad) and the θ of the next step in one exchange (sync: the
        next round's, once it closes; async: θ with this push applied)."""
        c = self._open()
        gbuf = _floats(grad, self.num_params, "grad")
        theta = np.empty(self.num_params, np.float32) if out is None else out
        tbuf = _floats(theta, self.num_params, "out", writable=True)
        pp = ffi.new("ps_push_pull *")
        lib.ps_push_pull_init(pp)
        pp.clock = self.clock
        pp.grad = gbuf
        pp.samples = int(samples)
        pp.n = self.num_params
        pp.theta = tbuf
        pp.min_version = self.clock + 1 if self.mode == "sync" else 0
        pp.pull_clock = self.clock + 1 if self.mode != "async" else 0
        self._check(self._retry(lambda: lib.ps_client_push_pull(c, pp), safe=False))
        self.clock += 1
        if not pp.pulled:
            return self.pull(out=theta)
        self.version = int(pp.version)
        if self.mode == "sync" and self.version > self.clock:
            self.clock = self.version
        return theta

    # ---- sparse tables ----

    def _table(self, table):
        if isinstance(table, str):
            for i, t in enumerate(self.tables):
                if t.name == table:
                    return i, t.dim
            raise InvalidArgumentError(CONSTANTS["PS_EINVAL"], f"no table named {table!r}")
        return int(table), self.tables[int(table)].dim

    def pull_rows(self, table, keys, out=None):
        """Rows of `table` (index or name) for keys (uint64, sorted and
        unique) as a float32 array of len(keys) × dim."""
        c = self._open()
        i, dim = self._table(table)
        kbuf = _keys(keys)
        rows = np.empty((len(keys), dim), np.float32) if out is None else out
        rbuf = _floats(rows, len(keys) * dim, "out", writable=True)
        self._check(self._retry(lambda: lib.ps_client_pull_rows(
            c, i, kbuf, len(keys), rbuf, len(keys) * dim), safe=True))
        return rows

    def push_rows(self, table, keys, grads, samples):
        """Gradient rows (float32, len(keys) × dim) of `table` for keys, at
        the worker's clock; in sync mode the step's dense push closes them."""
        c = self._open()
        i, dim = self._table(table)
        kbuf = _keys(keys)
        gbuf = _floats(grads, len(keys) * dim, "grads")
        self._check(self._retry(lambda: lib.ps_client_push_rows(
            c, i, self.clock, kbuf, len(keys), gbuf, len(keys) * dim, int(samples)), safe=False))

    # ---- the end ----

    def report(self, loss, samples_per_s=float("nan")):
        """The loss and samples/s the heartbeats carry to psctl status."""
        lib.ps_client_report(self._open(), float(loss), float(samples_per_s))

    def shared_memory(self):
        """(shards θ goes through shared memory with, why not for others)."""
        why = ffi.new("char **")
        n = lib.ps_client_shared_memory(self._open(), why)
        return int(n), ffi.string(why[0]).decode() if why[0] != ffi.NULL else ""

    def done(self):
        """This worker pushed its last gradient (it no longer counts for rounds)."""
        c = self._open()
        self._check(self._retry(lambda: lib.ps_client_done(c), safe=True))

    def pull_final(self, out=None):
        """After done(): the final θ, once every worker is done."""
        return self.pull(out=out, min_version=VERSION_FINAL)

    def abort(self, why):
        """Stops the whole job, saying why."""
        self._check(lib.ps_client_abort(self._open(), why.encode()))

    def close(self):
        """Says BYE to every shard and frees the client (again: nothing)."""
        if self._c == ffi.NULL:
            return
        cp = ffi.new("ps_client **", self._c)
        self._c = ffi.NULL
        rc = lib.ps_client_close(cp)
        if rc != 0:
            raise error_for(rc, "closing the client")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.close()
        except Error:
            if exc[0] is None:
                raise
        return False

    def __del__(self):
        if getattr(self, "_c", ffi.NULL) != ffi.NULL:
            cp = ffi.new("ps_client **", self._c)
            self._c = ffi.NULL
            lib.ps_client_close(cp)
