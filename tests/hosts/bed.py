"""bed.py — many hosts on one machine: a network namespace per psd shard and
per worker (and per extra host, e.g. one for psctl), each joined by a veth
link to a bridge in a namespace of its own. The e2e tests, run.py and the
bench build on it; it needs root and iproute2 (ip, tc).

What this machine's kernel gives, and so what the bed relies on:
- namespaces, veth pairs and bridges work as root;
- of the qdiscs only tbf, htb and pfifo exist, no netem: a link can be
  rate-limited (tbf, both directions) and cut, but no delay or loss can be
  added. A tbf of 1 Gbit/s carries about 0.90-0.95 Gbit/s of TCP; an
  unlimited veth is CPU-bound (about 3 Gbit/s on a busy 2-core machine);
- processes in different namespaces share the kernel, /dev/shm and the boot
  id, so a worker on the bed could use psd's shared memory: jobs on the bed
  set `shared_memory: false`, as a worker on another VM has none, and
  shared_memory_users() finds any worker psd names as using it.

Rules it keeps: addresses in 198.18.0.0/15 (RFC 2544's benchmarking range)
and no other, IPv6 off in every namespace, namespace names unique per run
(ps<pid>x<random>-<host>) so parallel runs do not collide; it kills what it
started by PID (process groups it made) and removes every namespace it
made, on exit, on an exception and on SIGTERM/SIGINT/SIGHUP; namespaces a
killed run left behind (its PID gone) are removed by the next bed. Every
wait is bounded by a timeout."""
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time

SKIP = 77                    # the exit code ctest reads as "skipped" (SKIP_RETURN_CODE)
PREFIX = "ps"                # namespace names: ps<pid>x<hex>-<host>
NETNS_DIR = "/run/netns"
IP_TIMEOUT_S = 10            # any one ip/tc command
_NS_RE = re.compile(r"^ps(\d+)x[0-9a-f]{6}-")


class Unavailable(Exception):
    """The bed cannot be made here (not root, no iproute2, no namespaces)."""


def unavailable_reason():
    """Why the bed cannot be made on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} (Debian package iproute2) is not installed"
    return None


def _tool(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


def _sh(argv, check=True, timeout_s=IP_TIMEOUT_S):
    """Runs an ip/tc/sysctl command; raises with its stderr when check and it fails."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(argv)}: no answer in {timeout_s} s")
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip() or f'exit {p.returncode}'}")
    return p


def rate_bits(rate):
    """Bits per second of a tc rate ("1gbit", "100mbit", "500kbit", "1e9"); None: unlimited."""
    if rate in (None, "", "unlimited", "none"):
        return None
    m = re.fullmatch(r"([0-9.e+]+)\s*(|bit|kbit|mbit|gbit)", str(rate).strip().lower())
    if not m:
        raise ValueError(f"rate {rate!r}: give e.g. 1gbit, 100mbit, 500kbit or unlimited")
    scale = {"": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[m.group(2)]
    bits = float(m.group(1)) * scale
    if bits < 1e5:
        raise ValueError(f"rate {rate!r}: at least 100kbit")
    return int(bits)


def _pdeathsig():
    """In a child before exec: SIGKILL when the process that started it dies,
    so a bed killed with SIGKILL (a ctest timeout) leaves nothing running."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Proc:
    """A process the bed started in one host's namespace: its stdout and
    stderr together, line by line, kept in .lines as they come."""

    def __init__(self, bed, host, argv, name=None, env=None, echo=None):
        self.host = host
        self.echo = echo
        self.name = name or host
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        cmd = [_tool("ip"), "netns", "exec", bed.ns(host)] + list(argv)
        # its own process group, so kill() reaches a child it may start
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, text=True, errors="replace",
                                      start_new_session=True, preexec_fn=_pdeathsig, env=env)
        self.pid = self.popen.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.popen.stdout:
            if self.echo:
                self.echo(self.name, line.rstrip("\n"))
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_line(self, pattern, timeout_s, start=0):
        """The first line (from index start) matching the regex, waiting at
        most timeout_s; None if none came or the process ended without it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i]):
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cond.wait(min(left, 0.2))

    def wait(self, timeout_s):
        """Exit code, or None if it still runs after timeout_s."""
        try:
            code = self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self.reader.join(timeout=5)
        return code

    def signal(self, sig):
        """Sends sig to the process by PID (no-op once it has exited)."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        """SIGKILL to the process group it leads (by PID); waits for it."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class Bed:
    """Hosts, each in a namespace of its own with one link to the bridge.

    bed = Bed(["psd0", "w0", "w1", "ctl"], rate="1gbit")
    with bed:                       # up(); down() on leaving, however it leaves
        p = bed.start("psd0", ["psd", "--config", job])
        bed.link_down("w1"); bed.link_up("w1"); bed.set_rate("w0", None)
        rx, tx = bed.counters("psd0")

    Host i of the list gets 198.18.0.(i + 2)/16; the bridge's namespace has
    no address. up() raises Unavailable when namespaces cannot be made."""

    def __init__(self, hosts, rate=None):
        if not hosts or len(set(hosts)) != len(hosts) or len(hosts) > 250:
            raise ValueError("give 1 to 250 distinct host names")
        for h in hosts:
            if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", h) or h == "br":
                raise ValueError(f"host name {h!r}: 1-8 lower-case letters and digits, not br")
        self.hosts = list(hosts)
        self.rate = rate
        rate_bits(rate)  # a bad rate fails now, before anything is made
        self.run_id = f"{PREFIX}{os.getpid()}x{secrets.token_hex(3)}"
        self.made = []         # namespaces made, in order
        self.procs = []        # Proc objects started
        self.rates = {}
        self._old_handlers = {}
        self._is_up = False

    # ---- names and addresses --------------------------------------------

    def ns(self, host):
        return f"{self.run_id}-{host}"

    def addr(self, host):
        """The host's IPv4 address (198.18.0.0/15)."""
        return f"198.18.0.{self.hosts.index(host) + 2}"

    def _port(self, host):
        return f"v{self.hosts.index(host)}"  # the bridge's end of host's link

    # ---- up and down ------------------------------------------------------

    def up(self):
        why = unavailable_reason()
        if why:
            raise Unavailable(why)
        self._signals_install()
        sweep_stale()
        br = self.ns("br")
        try:
            self._ns_add(br)
        except RuntimeError as e:
            raise Unavailable(f"cannot make a network namespace: {e}")
        ip = _tool("ip")
        _sh([ip, "-n", br, "link", "add", "br0", "type", "bridge"])
        _sh([ip, "-n", br, "link", "set", "br0", "up"])
        for h in self.hosts:
            ns = self.ns(h)
            self._ns_add(ns)
            _sh([ip, "-n", br, "link", "add", self._port(h), "type", "veth", "peer", "name", "eth0",
                 "netns", ns])
            _sh([ip, "-n", br, "link", "set", self._port(h), "master", "br0", "up"])
            _sh([ip, "-n", ns, "addr", "add", f"{self.addr(h)}/16", "dev", "eth0"])
            _sh([ip, "-n", ns, "link", "set", "eth0", "up"])
            _sh([ip, "-n", ns, "link", "set", "lo", "up"])
            self.set_rate(h, self.rate)
        self._is_up = True
        self._wait_reachable()
        return self

    def _ns_add(self, ns):
        ip = _tool("ip")
        _sh([ip, "netns", "add", ns])
        self.made.append(ns)
        # IPv6 off before any link exists in it: only 198.18.0.0/15 is ever used
        _sh([ip, "netns", "exec", ns, _tool("sysctl"), "-q", "-w",
             "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])

    def _wait_reachable(self, timeout_s=10):
        """Bridge ports take a moment to forward; waits (bounded) until the
        first host's neighbours answer ARP, i.e. a TCP connect is refused
        rather than lost."""
        if len(self.hosts) < 2:
            return
        a, b = self.hosts[0], self.hosts[-1]
        probe = ("import socket,sys\ns=socket.socket();s.settimeout(0.5)\n"
                 "try:\n s.connect((sys.argv[1],9))\nexcept ConnectionRefusedError:\n sys.exit(0)\n"
                 "except OSError:\n sys.exit(1)\n")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            p = _sh([_tool("ip"), "netns", "exec", self.ns(a), sys.executable, "-c", probe,
                     self.addr(b)], check=False)
            if p.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"bed: {a} cannot reach {b} ({self.addr(b)}) after {timeout_s} s")

    def down(self):
        """Kills every process it started (by PID) and removes every
        namespace it made; safe to call twice."""
        for p in self.procs:
            p.signal(signal.SIGCONT)  # a stopped process dies on SIGKILL anyway; be sure
            p.kill()
        self.procs = []
        for ns in reversed(self.made):
            _ns_remove(ns)
        self.made = []
        self._is_up = False
        self._signals_restore()

    def __enter__(self):
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc):
        self.down()
        return False

    def _signals_install(self):
        def on_signal(sig, frame):
            # unwinds through every try/finally and with-block, so down() runs
            raise SystemExit(128 + sig)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                self._old_handlers[sig] = signal.signal(sig, on_signal)
            except ValueError:  # not the main thread: leave the handlers be
                pass

    def _signals_restore(self):
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers = {}

    # ---- processes --------------------------------------------------------

    def start(self, host, argv, name=None, env=None, echo=None):
        """Starts argv in host's namespace (its own process group); a Proc.
        echo(name, line), if given, sees each line of its output as it comes."""
        if not self._is_up:
            raise RuntimeError("bed: start() before up()")
        p = Proc(self, host, argv, name=name, env=env, echo=echo)
        self.procs.append(p)
        return p

    def run(self, host, argv, timeout_s):
        """Runs argv in host's namespace to its end; (code or None on timeout, output)."""
        p = self.start(host, argv)
        code = p.wait(timeout_s)
        if code is None:
            p.kill()
        return code, p.text()

    # ---- links ------------------------------------------------------------

    def link_down(self, host):
        """Cuts host's link at the bridge: its carrier stays up, as a VM's
        does when the network between fails, and every frame is lost."""
        _sh([_tool("ip"), "-n", self.ns("br"), "link", "set", self._port(host), "nomaster"])

    def link_up(self, host):
        _sh([_tool("ip"), "-n", self.ns("br"), "link", "set", self._port(host), "master", "br0"])

    def set_rate(self, host, rate):
        """Limits host's link to rate (tc syntax, e.g. "1gbit") both ways with
        tbf, or lifts the limit (None); works mid-run."""
        bits = rate_bits(rate)
        tc = _tool("tc")
        for ns, dev in ((self.ns(host), "eth0"), (self.ns("br"), self._port(host))):
            if bits is None:
                _sh([tc, "-n", ns, "qdisc", "del", "dev", dev, "root"], check=False)
            else:
                # the bucket holds 2 ms at the rate (16 KiB at least: tbf cuts
                # bigger offloaded segments to fit); the queue 50 ms (256 KiB
                # at least), so a slow link delays bursts rather than drop them
                burst = max(16 * 1024, bits // 8 // 500)
                limit = max(256 * 1024, bits // 8 // 20)
                _sh([tc, "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate",
                     str(bits), "burst", str(burst), "limit", str(limit)])
        self.rates[host] = bits

    def counters(self, host):
        """(rx_bytes, tx_bytes) of host's link, as host sees them."""
        p = _sh([_tool("ip"), "-n", self.ns(host), "-s", "-j", "link", "show", "dev", "eth0"])
        st = json.loads(p.stdout)[0]["stats64"]
        return st["rx"]["bytes"], st["tx"]["bytes"]


def _ns_remove(ns):
    """Kills what still runs in ns (by PID) and deletes it."""
    ip = _tool("ip")
    p = _sh([ip, "netns", "pids", ns], check=False)
    for pid in p.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _sh([ip, "netns", "del", ns], check=False)


def sweep_stale():
    """Removes the namespaces of beds whose process is gone (killed before
    it could clean up); never touches a live bed's."""
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return
    for n in names:
        m = _NS_RE.match(n)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _ns_remove(n)


def shared_memory_users(psd_log):
    """The ranks psd's log names as using shared memory (should be none on the bed)."""
    return [int(r) for r in re.findall(r"rank (\d+) is on this host: .* shared memory", psd_log)]
