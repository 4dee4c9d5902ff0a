"""metrics_flood.py — what a hostile load on psd's /metrics costs a job, and
whether a real scrape still gets through (docs/operations.md#metrics).

1. Flood: one sync job (digits softmax, 2 workers, one psd, psrun) run
   alone and with FLOOD clients hammering /metrics (each: a new connection,
   GET /metrics, read to the end, again at once; client i binds 127.0.0.(2+i)
   so the clients come from as many addresses). Runs alternate (alone,
   flood, alone, ...; the pair's order swaps each time) and the figures are
   medians of RUNS each: the job's wall time and psd's CPU time, flood
   beside alone. The clients run at nice 19 (--nice), so that on a small
   machine their own CPU (on a real network: other machines') weighs
   little beside psd's; their answers are counted by status (0: closed
   without an answer, or refused).
2. Slow clients: psd idle, SLOW connections from 127.0.0.2..9 trickle a
   request (a header line every 2 s, reconnecting 2 s after psd closed
   one) for 20 s while 127.0.0.1 scrapes /metrics once a second (10 s
   each at most, Prometheus' default timeout): figures, the scrapes
   answered 200 and the slowest beside the slowest without slow clients.

Usage: metrics_flood.py BUILD_DIR [--runs 3] [--flood 20] [--slow 2000]
       [--epochs 600] [--one-address] [--nice 19] [--skip-flood] [--skip-slow]
Prints a table: figure | ours | reference | ratio | reference is. Timing is
never asserted: the machine's load is printed with the figures."""
import argparse
import os
import re
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "config", "examples", "data")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_text(name, port, epochs):
    return f"""job: {name}
mode: sync
workers: 2
servers: [tcp://127.0.0.1:{free_port()}]
model:
  type: softmax
  features: 64
  classes: 10
  init: {{scheme: xavier, seed: 42}}
data:
  train: {os.path.abspath(DATA)}/digits.train.csv
  test: {os.path.abspath(DATA)}/digits.test.csv
  normalize: standard
optimizer:
  type: sgd
  lr: 0.05
training:
  epochs: {epochs}
  batch_size: 16
  seed: 7
metrics:
  listen: 127.0.0.1:{port}
"""


def get(port, src="127.0.0.1", timeout_s=10.0):
    """One GET /metrics from src: (HTTP status or 0, seconds)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s,
                                      source_address=(src, 0)) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        m = re.match(rb"HTTP/1\.[01] (\d+)", data)
        return (int(m.group(1)) if m else 0), time.monotonic() - t0
    except OSError:
        return 0, time.monotonic() - t0


def flooder(port, src, out_path, nice):
    """A child: GET /metrics back to back until SIGTERM; counts by status."""
    os.nice(nice)
    counts = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        status, _ = get(port, src, timeout_s=5)
        counts[status] = counts.get(status, 0) + 1
        if status == 0:
            time.sleep(0.001)  # psd not up yet, or a refusal: do not spin on ECONNREFUSED
    with open(out_path, "w") as f:
        f.write(" ".join(f"{k}:{v}" for k, v in sorted(counts.items())))
    os._exit(0)


def cpu_of(pid):
    """utime + stime of pid in seconds, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def psd_pid_of(job_path):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"/psd") and job_path.encode() in cmd:
            return int(d)
    return None


def run_job(build, job_path, port, flood, tmp, tag, one_address=False, nice=19):
    """(wall s, psd CPU s, flood counts) of one psrun of the job."""
    kids = []
    if flood:
        for i in range(flood):
            out = os.path.join(tmp, f"flood-{tag}-{i}.txt")
            pid = os.fork()
            if pid == 0:
                try:
                    flooder(port, "127.0.0.2" if one_address else f"127.0.0.{2 + i}", out, nice)
                finally:
                    os._exit(1)
            kids.append((pid, out))
    t0 = time.monotonic()
    log = open(os.path.join(tmp, f"psrun-{tag}-{flood}.log"), "w+")
    p = subprocess.Popen([os.path.join(build, "bin", "psrun"), job_path],
                         stdout=subprocess.DEVNULL, stderr=log)
    cpu, pid = None, None
    while p.poll() is None:
        pid = pid or psd_pid_of(job_path)
        if pid:
            cpu = cpu_of(pid) or cpu
        time.sleep(0.05)
    wall = time.monotonic() - t0
    log.seek(0)
    err = log.read()
    log.close()
    counts = {}
    for kid, out in kids:
        os.kill(kid, signal.SIGTERM)
    for kid, out in kids:
        os.waitpid(kid, 0)
        try:
            for word in open(out).read().split():
                k, v = word.split(":")
                counts[k] = counts.get(k, 0) + int(v)
        except OSError:
            pass
    if p.returncode != 0:
        sys.exit(f"metrics_flood: psrun failed (exit {p.returncode}):\n{err[-2000:]}")
    return wall, cpu or 0.0, counts


def slow_clients(port, n, seconds, scrape_every_s=1.0):
    """n trickling connections from 127.0.0.2..9 for `seconds` while
    127.0.0.1 scrapes every scrape_every_s (the scrape driven by the same
    select loop, so the slow clients never pause); returns (scrape results
    [(status, s)], connections tried)."""
    sel = selectors.DefaultSelector()
    slow = {}  # socket -> [index, request line sent, next trickle time]
    reopen = []  # (time, index)
    tried = 0

    def open_one(i):
        nonlocal tried
        c = socket.socket()
        c.setblocking(False)
        try:
            c.bind((f"127.0.0.{2 + i % 8}", 0))
            c.connect_ex(("127.0.0.1", port))
        except OSError:
            c.close()
            reopen.append((time.monotonic() + 2.0, i))
            return
        tried += 1
        slow[c] = [i, False, 0.0]
        sel.register(c, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def drop(c):
        i = slow.pop(c)[0]
        sel.unregister(c)
        c.close()
        reopen.append((time.monotonic() + 2.0, i))  # back at its next trickle

    scrape, results = None, []  # scrape: [socket, start, request sent, data]
    for i in range(n):
        open_one(i)
    end = time.monotonic() + seconds
    next_scrape = time.monotonic() + 1.0
    while time.monotonic() < end:
        for key, ev in sel.select(timeout=0.01):
            c = key.fileobj
            if scrape is not None and c is scrape[0]:
                continue
            st = slow.get(c)
            if st is None:
                continue
            if ev & selectors.EVENT_READ:
                try:
                    if c.recv(4096) == b"":
                        drop(c)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    drop(c)
                    continue
            if ev & selectors.EVENT_WRITE and not st[1]:
                try:
                    c.send(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
                    st[1], st[2] = True, time.monotonic() + 2.0
                    sel.modify(c, selectors.EVENT_READ)
                except BlockingIOError:
                    pass
                except OSError:
                    drop(c)
        now = time.monotonic()
        for c, st in list(slow.items()):
            if st[1] and now >= st[2]:
                try:
                    c.send(b"X-Slow: yes\r\n")
                    st[2] = now + 2.0
                except OSError:
                    drop(c)
        while reopen and reopen[0][0] <= now:
            open_one(reopen.pop(0)[1])
        if scrape is None and now >= next_scrape:
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            scrape = [c, now, False, b""]
            next_scrape = now + scrape_every_s
        if scrape is not None:
            c, t0, sent, data = scrape
            done = False
            try:
                if not sent:
                    c.send(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    scrape[2] = True
                while True:
                    b = c.recv(65536)
                    if not b:
                        done = True
                        break
                    scrape[3] += b
            except (BlockingIOError, InterruptedError):
                done = now - t0 > 10  # Prometheus' default scrape timeout
            except OSError:
                done = True
            if done:
                m = re.match(rb"HTTP/1\.[01] (\d+)", scrape[3])
                results.append((int(m.group(1)) if m else 0, time.monotonic() - t0))
                c.close()
                scrape = None
    if scrape is not None and time.monotonic() - scrape[1] > 5:
        results.append((0, time.monotonic() - scrape[1]))  # unanswered for 5 s: counted as failed
    for c in list(slow):
        c.close()
    return results, tried


def main():
    a = argparse.ArgumentParser()
    a.add_argument("build")
    a.add_argument("--runs", type=int, default=3)
    a.add_argument("--flood", type=int, default=20)
    a.add_argument("--slow", type=int, default=2000)
    a.add_argument("--epochs", type=int, default=600)
    a.add_argument("--one-address", action="store_true",
                   help="every flooding client from 127.0.0.2 (by default client i is 127.0.0.(2+i))")
    a.add_argument("--nice", type=int, default=19, help="the flooding clients' nice (19)")
    a.add_argument("--skip-flood", action="store_true")
    a.add_argument("--skip-slow", action="store_true")
    args = a.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.slow + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.slow + 200), hard))
    tmp = tempfile.mkdtemp(prefix="ps-bench-flood-")
    figures = []
    print(f"metrics_flood: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          f"at the start", flush=True)
    if not args.skip_flood:
        port = free_port()
        job_path = os.path.join(tmp, "flood.yaml")
        with open(job_path, "w") as f:
            f.write(job_text("flood", port, args.epochs))
        alone, flooded = [], []
        for r in range(args.runs):
            for flood in ((0, args.flood) if r % 2 == 0 else (args.flood, 0)):
                wall, cpu, counts = run_job(args.build, job_path, port, flood, tmp, f"{r}",
                                            args.one_address, args.nice)
                (flooded if flood else alone).append((wall, cpu))
                what = f"{flood} flooding" if flood else "alone"
                print(f"metrics_flood: run {r + 1} {what}: {wall:.2f} s, psd CPU {cpu:.2f} s"
                      + (f", answers by status {counts}" if flood else "")
                      + f" (load {os.getloadavg()[0]:.2f})", flush=True)
        w_a = statistics.median(x[0] for x in alone)
        w_f = statistics.median(x[0] for x in flooded)
        c_a = statistics.median(x[1] for x in alone)
        c_f = statistics.median(x[1] for x in flooded)
        tag = f"{args.flood}{'_1addr' if args.one_address else ''}"
        figures.append((f"flood_{tag}_job_wall", w_f, w_a, "s",
                        f"the job alone, median of {args.runs} (target: ratio <= 1.1)"))
        figures.append((f"flood_{tag}_psd_cpu", c_f, c_a, "s",
                        f"psd's CPU, the job alone, median of {args.runs}"))
    if not args.skip_slow:
        port = free_port()
        job_path = os.path.join(tmp, "idle.yaml")
        with open(job_path, "w") as f:
            f.write(job_text("idle", port, 1))
        psd = subprocess.Popen([os.path.join(args.build, "bin", "psd"), "--config", job_path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            end = time.monotonic() + 30
            while get(port, timeout_s=1)[0] != 200 and time.monotonic() < end:
                time.sleep(0.1)
            quiet = [get(port)[1] for _ in range(10)]
            results, connects = slow_clients(port, args.slow, 20)
            ok = sum(1 for st, _ in results if st == 200)
            print(f"metrics_flood: {args.slow} slow clients: {ok} of {len(results)} scrapes "
                  f"from 127.0.0.1 answered 200, median "
                  f"{statistics.median(t for _, t in results):.3f} s, "
                  f"slowest {max(t for _, t in results):.3f} s; "
                  f"{connects} connections tried (load {os.getloadavg()[0]:.2f})", flush=True)
            figures.append((f"slow_{args.slow}_scrapes_ok", ok, len(results), "",
                            "scrapes tried, one a second for 20 s"))
            figures.append((f"slow_{args.slow}_scrape_max", max(t for _, t in results) * 1e3,
                            max(quiet) * 1e3, "ms", "slowest of 10 scrapes, no slow clients"))
        finally:
            psd.send_signal(signal.SIGTERM)
            try:
                psd.wait(10)
            except subprocess.TimeoutExpired:
                psd.kill()
                psd.wait()
    print(f"metrics_flood: load average {os.getloadavg()[0]:.2f} at the end")
    print("| figure | ours | reference | ratio | reference is |")
    print("|---|---|---|---|---|")
    for name, ours, ref, unit, ref_is in figures:
        ratio = ours / ref if ref else 0.0
        print(f"| {name} | {ours:.4g} {unit} | {ref:.4g} {unit} | {ratio:.2f} | {ref_is} |")


if __name__ == "__main__":
    main()
