"""test_metrics_limits.py — /metrics against hostile clients (docs/operations.md#metrics):
a slow-loris request is closed 5 s after its connection was accepted
however steadily it trickles; one address holds at most 4 connections; an
address over its rate gets 429, then its connections are refused (held
unread, then reset), and it is served again once it stops; scrapes close
together share one rendering; and while up to 2000 slow clients from
127.0.0.2-9 try to hold every connection, scrapes from 127.0.0.1 are
answered. Linux routes all of 127/8 to lo, so a client chooses its
address by binding to it before it connects. No timing is asserted
beyond the 5 s bound itself (with a wide margin)."""
import re
import resource
import selectors
import socket
import time

from harness import Env, Proc, free_port, job_yaml, no_leftovers, stop_procs, wait_for, write

env = Env()
port = free_port()
job = write(env, "limits.yaml", job_yaml(env, "limits", extra=f"metrics: {{listen: 127.0.0.1:{port}}}\n"))
REQ = b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"


def connect(src, timeout_s=10.0):
    s = socket.socket()
    s.settimeout(timeout_s)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def ask(src, timeout_s=10.0):
    """One GET /metrics from src: (status, body, headers); status 0 when
    the connection was closed or reset without an answer, or failed."""
    try:
        with connect(src, timeout_s) as s:
            s.sendall(REQ)
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    except OSError:
        return 0, "", ""
    m = re.match(rb"HTTP/1\.[01] (\d+)[^\r]*\r\n(.*?)\r\n\r\n(.*)", data, re.S)
    if m is None:
        return 0, "", ""
    return int(m.group(1)), m.group(3).decode(errors="replace"), m.group(2).decode()


def value(text, series):
    m = re.search(r"(?m)^" + re.escape(series) + r" (\S+)$", text)
    return float(m.group(1)) if m else None


def closed_after(s, limit_s, trickle_s=None):
    """Seconds until psd closed s (EOF or reset), sending a header line
    every trickle_s meanwhile; None when still open after limit_s."""
    t0 = time.monotonic()
    s.setblocking(False)
    next_line = t0 + (trickle_s or limit_s)
    while time.monotonic() - t0 < limit_s:
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ)
        sel.select(timeout=0.05)
        sel.close()
        try:
            if s.recv(4096) == b"":
                return time.monotonic() - t0
        except BlockingIOError:
            pass
        except OSError:
            return time.monotonic() - t0
        if trickle_s and time.monotonic() >= next_line:
            try:
                s.send(b"X-Slow: yes\r\n")
            except OSError:
                return time.monotonic() - t0
            next_line += trickle_s
    return None


psd = Proc(env, "psd", [env.prog("psd"), "--config", job])
env.check(wait_for(lambda: ask("127.0.0.1", 2)[0] == 200, 30, "psd's /metrics"),
          "psd serves /metrics")

# ---- a slow-loris request: closed 5 s after its accept, not 5 s after its last byte
t0 = time.monotonic()
s = connect("127.0.0.1")
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: test\r\n")
took = closed_after(s, 12, trickle_s=0.5)
s.close()
env.check(took is not None and took < 5 + 2,
          f"a request trickling a header line every 0.5 s is closed within the 5 s bound "
          f"(closed after {took if took is None else round(took, 2)} s; the margin is the loop's)")

# ---- one address holds at most 4 connections: the rest are refused (never answered)
idle = [connect("127.0.0.10") for _ in range(8)]
time.sleep(0.3)  # psd accepts them all meanwhile
answered = 0
for c in idle:
    try:
        c.sendall(REQ)
        c.settimeout(10)
        answered += c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        pass  # reset: refused
    c.close()
env.check(answered == 4, f"one address holds 4 connections, not more ({answered} of 8 answered)")

# ---- the request rate of one address: 429, then closed unread, then served again
statuses, t_start = [], time.monotonic()
retry_after = None
while len(statuses) < 3000 and time.monotonic() - t_start < 30:
    st, _, head = ask("127.0.0.3")
    statuses.append(st)
    if st == 429 and retry_after is None:
        retry_after = re.search(r"(?mi)^Retry-After: (\d+)", head)
    if st == 0 and 429 in statuses:
        break
elapsed = time.monotonic() - t_start
first_429 = statuses.index(429) if 429 in statuses else None
env.check(first_429 is not None,
          f"an address that asks back to back gets 429 (after {first_429} answers, "
          f"{len(statuses)} requests in {elapsed:.1f} s)")
if first_429 is not None:
    ok = statuses[:first_429].count(200)
    env.check(ok >= 20 and ok <= 20 + 20 * elapsed + 2,
              f"{ok} answered before the first 429: the burst of 20, and 20 a second")
    env.check(retry_after is not None and retry_after.group(1) == "1", "429 says Retry-After: 1")
    env.check(statuses[-1] == 0 and statuses.count(429) >= 10,
              f"far over its rate, its connections are refused unanswered "
              f"({statuses.count(429)} 429s, then {statuses[-1]})")
env.check(ask("127.0.0.4")[0] == 200, "meanwhile another address is answered")
time.sleep(1.5)
env.check(ask("127.0.0.3")[0] == 200, "1.5 s later the flooding address is answered again")

# ---- scrapes close together share one rendering
before = ask("127.0.0.5")[1]
batch = [connect("127.0.0.6") for _ in range(4)] + [connect("127.0.0.7") for _ in range(4)]
for c in batch:
    c.sendall(REQ)
bodies = []
for c in batch:
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.close()
    bodies.append(data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace"))
after = ask("127.0.0.5")[1]
renders = (value(after, 'psd_metrics_renders_total{shard="0"}') or 0) - \
    (value(before, 'psd_metrics_renders_total{shard="0"}') or 0)
env.check(value(before, 'psd_metrics_renders_total{shard="0"}') is not None and
          all("psd_updates_total" in b for b in bodies) and renders < 9,
          f"10 scrapes close together: psd_metrics_renders_total rose by {renders:.0f} "
          f"(one rendering answers every scrape for 100 ms)")
env.check(len(set(bodies)) < len(bodies),
          f"scrapes answered from one rendering are the same text "
          f"({len(set(bodies))} different bodies of {len(bodies)})")

# ---- slow clients from 127.0.0.2-9 trying to hold every connection; 127.0.0.1 scrapes
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 2000 + 200
if soft < want and (hard == resource.RLIM_INFINITY or hard >= soft):
    resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY
                                                 else min(want, hard), hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
nslow = max(100, min(2000, soft - 200))
print(f"{nslow} slow clients (descriptors: {soft})")

sel = selectors.DefaultSelector()
state = {}  # socket -> [index, sent the request line?, next line time]
reopen = []  # (time, index)
opened = 0


def open_slow(i):
    global opened
    c = socket.socket()
    c.setblocking(False)
    try:
        c.bind((f"127.0.0.{2 + i % 8}", 0))
        c.connect_ex(("127.0.0.1", port))
    except OSError:
        c.close()
        reopen.append((time.monotonic() + 2, i))
        return
    opened += 1
    state[c] = [i, False, 0.0]
    sel.register(c, selectors.EVENT_READ | selectors.EVENT_WRITE)


def drop_slow(c):
    i = state.pop(c)[0]
    sel.unregister(c)
    c.close()
    reopen.append((time.monotonic() + 2, i))  # a slow-loris comes back


def pump(until):
    """Runs the slow clients until `until` (monotonic)."""
    while time.monotonic() < until:
        for key, ev in sel.select(timeout=0.02):
            c = key.fileobj
            if c not in state:
                continue
            st = state[c]
            if ev & selectors.EVENT_READ:
                try:
                    if c.recv(4096) == b"":
                        drop_slow(c)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    drop_slow(c)
                    continue
            if ev & selectors.EVENT_WRITE and not st[1]:
                try:
                    c.send(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
                    st[1], st[2] = True, time.monotonic() + 2
                    sel.modify(c, selectors.EVENT_READ)
                except BlockingIOError:
                    pass
                except OSError:
                    drop_slow(c)
        now = time.monotonic()
        for c, st in list(state.items()):
            if st[1] and now >= st[2]:
                try:
                    c.send(b"X-Slow: yes\r\n")
                    st[2] = now + 2
                except OSError:
                    drop_slow(c)
        while reopen and reopen[0][0] <= now:
            open_slow(reopen.pop(0)[1])


def scrape_in_background(src):
    """A scrape from src, driven by select while the slow clients run:
    (status, seconds)."""
    t0 = time.monotonic()
    c = socket.socket()
    c.setblocking(False)
    c.bind((src, 0))
    c.connect_ex(("127.0.0.1", port))
    data, sent = b"", False
    while time.monotonic() - t0 < 10:
        pump(time.monotonic() + 0.01)
        try:
            if not sent:
                c.send(REQ)
                sent = True
            b = c.recv(65536)
            if b == b"":
                break
            data += b
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            break
    c.close()
    m = re.match(rb"HTTP/1\.[01] (\d+)", data)
    return (int(m.group(1)) if m else 0), time.monotonic() - t0


for i in range(nslow):
    open_slow(i)
pump(time.monotonic() + 3)
held_before = len(state)
results = []
for _ in range(10):
    results.append(scrape_in_background("127.0.0.1"))
    pump(time.monotonic() + 0.5)
for c in list(state):
    sel.unregister(c)
    c.close()
state.clear()
ok = sum(1 for st, _ in results if st == 200)
env.check(ok == len(results),
          f"with {nslow} slow clients from 8 other addresses ({opened} connections tried), "
          f"{ok} of {len(results)} scrapes from 127.0.0.1 answered 200 "
          f"(slowest {max(t for _, t in results):.2f} s)")
text = ask("127.0.0.1")[1]
refused = sum(value(text, f'psd_metrics_connections_total{{shard="0",outcome="{o}"}}') or 0
              for o in ("no_slot", "displaced", "deadline"))
env.check(refused > 0, f"psd counts the slow clients it refused, displaced or timed out ({refused:.0f})")
print(f"after 3 s, {held_before} of the slow clients' sockets were open (psd holds 16 at most)")

psd.p.terminate()
env.check(psd.wait(30) == 0, "psd stops on SIGTERM")
if env.failures:
    psd.show()
stop_procs(env)
no_leftovers(env, job)
env.finish()
