"""slurm_cluster.py — a real Slurm cluster on one machine for the e2e tests:
munged on a socket in a temp folder, slurmctld in one network namespace of
the hosts bed (tests/hosts/bed.py, addresses in 198.18.0.0/15) and one
slurmd per node namespace (`slurmd -N nodeN`), so the steps of a job run on
different hosts as far as the network goes. Everything is started by PID and
killed by PID on stop(), at exit and on SIGTERM/SIGINT/SIGHUP (the bed's
handlers); the namespaces are removed with the bed. Every wait is bounded."""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import bed as bedmod

DAEMONS = ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "srun", "scontrol")


def unavailable_reason():
    """Why the cluster cannot run here, or None."""
    if os.geteuid() != 0:
        return "a Slurm cluster in namespaces needs root (slurmd runs as root)"
    for prog in DAEMONS:
        if shutil.which(prog) is None and not os.path.exists(f"/usr/sbin/{prog}"):
            return (f"{prog} is not installed (Debian packages slurmctld, slurmd, "
                    f"slurm-client, munge)")
    return bedmod.unavailable_reason()


def _which(prog):
    return shutil.which(prog) or f"/usr/sbin/{prog}"


class Cluster:
    """cluster = Cluster(tmp, nodes=3).start(); cluster.cmd(["sbatch", ...], 30)"""

    def __init__(self, tmp, nodes=3):
        self.dir = os.path.join(tmp, "slurm")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.nodes = [f"node{i + 1}" for i in range(nodes)]
        self.bed = bedmod.Bed(["ctl"] + self.nodes, rate=None)
        self.munged = None
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.sock = os.path.join(self.dir, "munge.sock")
        self.host = socket.gethostname().split(".")[0]
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.daemons = []
        atexit.register(self.stop)

    def addr(self, host):
        return self.bed.addr(host)

    def _conf_text(self):
        d = self.dir
        cpus = os.cpu_count() or 1
        lines = [
            "ClusterName=pstest",
            f"SlurmctldHost={self.host}({self.addr('ctl')})",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.sock}",
            "SlurmctldPort=6817", "SlurmdPort=6818",
            f"StateSaveLocation={d}/state", f"SlurmdSpoolDir={d}/spool-%n",
            f"SlurmctldPidFile={d}/slurmctld.pid", f"SlurmdPidFile={d}/slurmd-%n.pid",
            f"SlurmctldLogFile={d}/slurmctld.log", f"SlurmdLogFile={d}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill", "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt", f"JobCompLoc={d}/jobcomp.txt",
            "KillWait=5", "MinJobAge=600", "InactiveLimit=0", "SlurmctldTimeout=30",
            "SlurmdTimeout=30", "MessageTimeout=10", "PlugStackConfig=/dev/null",
        ]
        for n in self.nodes:
            lines.append(f"NodeName={n} NodeHostname={self.host} NodeAddr={self.addr(n)} "
                         f"CPUs={cpus} State=UNKNOWN")
        lines.append(f"PartitionName=test Nodes={','.join(self.nodes)} Default=YES "
                     "MaxTime=INFINITE State=UP OverSubscribe=YES")
        return "\n".join(lines) + "\n"

    def start(self, timeout_s=60):
        self.bed.up()
        d = self.dir
        os.makedirs(f"{d}/state", exist_ok=True)
        for n in self.nodes:
            os.makedirs(f"{d}/spool-{n}", exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(self._conf_text())
        # slurmd loads a cgroup plugin even with proctrack/linuxproc and
        # task/none; autodetect fails on a hybrid hierarchy (a tmpfs at
        # /sys/fs/cgroup), so name v1, which constrains nothing here
        with open(os.path.join(d, "cgroup.conf"), "w") as f:
            f.write("CgroupPlugin=cgroup/v1\nCgroupAutomount=no\n")
        key = f"{d}/munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True,
                       timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(key, 0o600)
        self.munged = subprocess.Popen(
            [_which("munged"), "--foreground", "--force", f"--socket={self.sock}",
             f"--key-file={key}", f"--log-file={d}/munged.log", f"--pid-file={d}/munged.pid",
             f"--seed-file={d}/munged.seed"],
            stdout=subprocess.DEVNULL, stderr=open(f"{d}/munged.err", "w"),
            start_new_session=True, preexec_fn=bedmod._pdeathsig)
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.munged.poll() is not None:
                raise RuntimeError(f"munged did not start: {self._tail('munged.err')}"
                                   f"{self._tail('munged.log')}")
            time.sleep(0.05)
        self.daemons.append(self.bed.start("ctl", [_which("slurmctld"), "-D", "-i", "-f", self.conf],
                                           name="slurmctld", env=self.env))
        for n in self.nodes:
            self.daemons.append(self.bed.start(n, [_which("slurmd"), "-D", "-N", n, "-f", self.conf],
                                               name=f"slurmd-{n}", env=self.env))
        while True:
            code, out = self.cmd(["sinfo", "-h", "-N", "-o", "%N %t"], 15)
            idle = re.findall(r"(\S+) idle", out or "")
            if len(idle) == len(self.nodes):
                return self
            for p in self.daemons:
                if p.popen.poll() is not None:
                    raise RuntimeError(f"{p.name} exited ({p.popen.returncode}): {p.text()[-2000:]}"
                                       f"\n{self._tail(p.name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the nodes are not idle after {timeout_s} s: {out}\n"
                                   f"{self._tail('slurmctld.log')}")
            time.sleep(0.3)

    def _tail(self, name, n=15):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def cmd(self, argv, timeout_s, host="ctl"):
        """Runs a Slurm client command on a host of the cluster: (code or None, output)."""
        p = self.bed.start(host, [_which(argv[0])] + argv[1:], name=argv[0], env=self.env)
        code = p.wait(timeout_s)
        if code is None:
            p.kill()
        self.bed.procs.remove(p)
        return code, p.text()

    def stop(self):
        """Kills (by PID) slurmctld, every slurmd and munged, and whatever a
        job left (every process in the namespaces); removes the namespaces."""
        self.bed.down()  # kills what it started and every pid left in each namespace
        if self.munged is not None and self.munged.poll() is None:
            self.munged.kill()
            self.munged.wait(timeout=10)
        self.munged = None
