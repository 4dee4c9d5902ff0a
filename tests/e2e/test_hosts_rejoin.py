"""test_hosts_rejoin.py — a worker whose link goes down long enough to be
evicted registers again within about a heartbeat interval of the link's
return, in ssp and in sync (tests/hosts/bed.py, links of 8 Mbit/s,
heartbeat every 250 ms, timeout 1 s). A cut link leaves the worker's TCP
connections established with data unacknowledged, and the kernel
retransmits only after waits that double (0.2, 0.4 ... 3.2 s): a worker
that waited for them registered again seconds after the link was back,
while psd refused the heartbeats queued meanwhile as "not registered".
Every process exits 0. Needs root: exits 77 (skipped) without."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from harness import Env, write  # noqa: E402
import bedtest  # noqa: E402
import jobs  # noqa: E402

env = Env()
HB = {"interval_ms": 250, "timeout_ms": 1000}
DOWN_S = 3.5  # the kernel's next retransmission after a cut this long: about 2.7 s after it
SLACK_S = 0.5  # the link's round trips, the handshakes, a loaded machine
b = bedtest.bed_or_skip(jobs.hosts_for(1, 2))


def joined(text, rank):
    return len(re.findall(rf"joined as rank {rank} ", text))


def rejoin(mode):
    """One run: rank 1's link down for DOWN_S once it is in epoch 2; the
    seconds from the link's return to psd's line that it joined again."""
    path = write(env, f"{mode}.yaml", bedtest.digits_job(
        env, f"hosts-rejoin-{mode}", bedtest.bed_servers(b), mode=mode, epochs=60, heartbeat=HB,
        extra="staleness: 2\n" if mode == "ssp" else ""))
    j = jobs.BedJob(b, env.bin, path, shards=1, workers=2).start()
    env.check(j.ws[1].wait_line(r"epoch 2/", 60) is not None, f"{mode}: rank 1 reached epoch 2")
    psd = j.psds[0]
    before = joined(psd.text(), 1)
    b.link_down("w1")
    try:
        time.sleep(DOWN_S)
    finally:
        b.link_up("w1")
    up = time.monotonic()
    back = bedtest.wait_until(lambda: joined(psd.text(), 1) > before, 30, step_s=0.01)
    took = time.monotonic() - up
    codes = j.wait(120)
    log = psd.text()
    print(f"{mode}: rank 1 joined again {took:.2f} s after its link came back; {codes}")
    env.check(bedtest.count(r"rank 1 \(worker \d+\) silent for \d+ ms: evicted", log) >= 1,
              f"{mode}: psd evicted rank 1 while its link was down")
    limit = HB["interval_ms"] / 1000 + SLACK_S
    env.check(back and took <= limit,
              f"{mode}: rank 1 registered again {took:.2f} s after its link came back "
              f"(at most a heartbeat interval and {SLACK_S} s: {limit:.2f} s)")
    env.check(all(c == 0 for c in codes.values()), f"{mode}: every process exits 0 ({codes})")
    if env.failures:
        bedtest.show_tail(j)
    for p in j.psds + list(j.ws.values()):
        p.kill()


try:
    rejoin("ssp")
    rejoin("sync")
finally:
    b.down()
env.finish()
