"""jobs.py — a psd job across the bed (bed.py): shard i of psd on host
psd<i>, worker rank r on host w<r>, every byte of θ and gradients over the
links (the job file says `shared_memory: false`). Used by run.py, the e2e
tests tests/e2e/test_hosts*.py and tests/bench/hosts_bench.py."""
import json
import os
import re
import time

PORT = 7070  # psd's port on its host; every shard has a host (an address) of its own

# keys whose value is a path, relative to the job file when not absolute
_PATH_KEYS = ("train", "test", "train_labels", "test_labels", "output", "dir",
              "server_secret_key", "server_public_key", "client_secret_key",
              "authorized_workers", "authorized_admins")
_PATH_RE = re.compile(r"(?m)(^|[\s{,])(" + "|".join(_PATH_KEYS) + r")(\s*:\s*)([^\s,}#]+)")


def hosts_for(shards, workers, extra=()):
    """Host names of a job's bed: psd0.., w0.., then extra ones (e.g. "ctl")."""
    return [f"psd{i}" for i in range(shards)] + [f"w{r}" for r in range(workers)] + list(extra)


def servers_in(text):
    """How many endpoints the job's one-line `servers: [...]` lists."""
    m = re.search(r"(?m)^servers:\s*\[([^\]]*)\]", text)
    if not m:
        raise ValueError("the job's servers must be one line: servers: [tcp://..., ...]")
    return len([s for s in m.group(1).split(",") if s.strip()])


def workers_in(text):
    m = re.search(r"(?m)^workers:\s*(\d+)", text)
    if not m:
        raise ValueError("the job has no workers: N line")
    return int(m.group(1))


def job_for_bed(text, job_dir, bed, shards, workers=None, port=PORT):
    """The job text rewritten for the bed: servers at the psd hosts'
    addresses, workers (when given), shared_memory: false, and relative
    paths made absolute (relative to job_dir) so the file can live elsewhere."""
    def absolute(m):
        value = m.group(4).strip("'\"")
        if value in ("null", "~") or os.path.isabs(value):
            return m.group(0)
        return m.group(1) + m.group(2) + m.group(3) + os.path.normpath(os.path.join(job_dir, value))
    text = _PATH_RE.sub(absolute, text)
    servers_in(text)  # one-line servers, or a clear error
    eps = ", ".join(f"tcp://{bed.addr(f'psd{i}')}:{port}" for i in range(shards))
    text = re.sub(r"(?m)^servers:.*$", f"servers: [{eps}]", text)
    if workers is not None:
        text = re.sub(r"(?m)^workers:.*$", f"workers: {workers}", text)
    if re.search(r"(?m)^shared_memory:", text):
        text = re.sub(r"(?m)^shared_memory:.*$", "shared_memory: false", text)
    else:
        text += "\nshared_memory: false  # the bed's hosts share a kernel; VMs do not\n"
    return text


class BedJob:
    """Runs a job file (already written for the bed) on it: psd shards first,
    once each says it listens, then the workers."""

    def __init__(self, bed, bindir, job_path, shards, workers, echo=None, log_level=None):
        self.bed = bed
        self.bindir = bindir
        self.job = job_path
        self.shards = shards
        self.workers = workers
        self.echo = echo
        self.log_level = log_level
        self.psds = []
        self.ws = {}
        self.t0 = None

    def prog(self, name):
        return os.path.join(self.bindir, name)

    def summary_path(self, rank):
        return f"{self.job}.w{rank}.json"

    def start_servers(self, timeout_s=30):
        if self.t0 is None:
            self.t0 = time.monotonic()
        for i in range(self.shards):
            argv = [self.prog("psd"), "--config", self.job, "--shard", str(i), "--exit-when-done"]
            if self.log_level:
                argv += ["--log-level", self.log_level]
            self.psds.append(self.bed.start(f"psd{i}", argv, name=f"psd{i}", echo=self.echo))
        for p in self.psds:
            if p.wait_line(r"listening on", timeout_s) is None:
                raise RuntimeError(f"{p.name} did not listen within {timeout_s} s:\n{p.text()}")

    def start_worker(self, rank):
        path = self.summary_path(rank)
        if os.path.exists(path):
            os.unlink(path)
        argv = [self.prog("psworker"), "--config", self.job, "--rank", str(rank),
                "--summary-json", path]
        w = self.bed.start(f"w{rank}", argv, name=f"w{rank}", echo=self.echo)
        self.ws[rank] = w
        return w

    def start(self, timeout_s=30):
        self.t0 = time.monotonic()
        self.start_servers(timeout_s)
        for r in range(self.workers):
            self.start_worker(r)
        return self

    def wait(self, timeout_s):
        """Waits (at most timeout_s in all) for every worker, then every psd;
        {name: exit code or None if it was still running (then killed)}."""
        deadline = time.monotonic() + timeout_s
        codes = {}
        for p in list(self.ws.values()) + self.psds:
            codes[p.name] = p.wait(max(0.1, deadline - time.monotonic()))
            if codes[p.name] is None:
                p.kill()
        self.wall_s = time.monotonic() - self.t0
        return codes

    def summary(self, rank=0):
        try:
            with open(self.summary_path(rank)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def psd_log(self):
        return "\n".join(p.text() for p in self.psds)

    def worker_log(self, rank):
        return self.ws[rank].text() if rank in self.ws else ""

    def epoch_seconds(self, rank=0):
        """Each epoch's time as the worker logged it ("epoch 3/20: ..., 2.64 s")."""
        return [float(s) for s in
                re.findall(r"epoch \d+/\d+: .*, ([0-9.]+) s$", self.worker_log(rank), re.M)]

    def psd_bytes(self):
        """(bytes into, bytes out of) every psd host, over their links so far."""
        rx = tx = 0
        for i in range(self.shards):
            r, t = self.bed.counters(f"psd{i}")
            rx += r
            tx += t
        return rx, tx
