"""test_hosts_training.py — jobs across hosts (tests/hosts/bed.py: psd and
each worker in a network namespace of its own, links of 8 Mbit/s through a
bridge) train to the accuracy they reach on loopback: a sync job to the
same accuracy (2 workers sum alike in any order, so sync is exact), an
async job to within 2 points (its order of pushes varies); no worker uses
psd's shared memory; θ crossed psd's link every update; psctl reads the
status from a third namespace. Needs root: exits 77 (skipped) without."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from harness import Env, free_port, no_leftovers, psrun, write  # noqa: E402
import bedtest  # noqa: E402
import jobs  # noqa: E402

env = Env()
b = bedtest.bed_or_skip(jobs.hosts_for(1, 2, extra=["ctl"]))
try:
    for mode, epochs, tolerance in (("sync", 4, 0.0), ("async", 4, 0.02)):
        # on loopback, as psrun runs it
        lo = write(env, f"{mode}-loopback.yaml", bedtest.digits_job(
            env, f"hosts-{mode}", bedtest.loopback_servers(free_port), mode=mode, epochs=epochs))
        code, summary, _ = psrun(env, lo, timeout_s=120)
        env.check(code == 0 and summary is not None, f"{mode}: the loopback run succeeds")
        acc_lo = summary["test_metric"]["value"] if summary else -1.0
        no_leftovers(env, lo)

        # the same job across the bed
        path = write(env, f"{mode}-bed.yaml", bedtest.digits_job(
            env, f"hosts-{mode}", bedtest.bed_servers(b), mode=mode, epochs=epochs))
        j = jobs.BedJob(b, env.bin, path, shards=1, workers=2)
        j.start_servers()
        before = j.psd_bytes()
        if mode == "sync":
            # psctl from the third namespace, while psd waits for its workers
            code, out = b.run("ctl", [env.prog("psctl"), "--config", path, "status"], 30)
            print(out)
            env.check(code == 0, f"psctl status from host ctl exits 0 (got {code})")
            env.check(re.search(r"tcp://198\.18\.0\.2:7070\s+0\s+0/2\s+650\s+sync", out)
                      is not None, "psctl status shows psd0 across the bed: version 0, 0/2 live")
        for r in range(2):
            j.start_worker(r)
        codes = j.wait(90)
        print(f"{mode} on the bed: {codes} in {j.wall_s:.1f} s")
        env.check(all(c == 0 for c in codes.values()), f"{mode}: every process exits 0 ({codes})")
        s = j.summary(0)
        env.check(s is not None, f"{mode}: rank 0 wrote its summary")
        if s is not None:
            acc = s["test_metric"]["value"]
            env.check(abs(acc - acc_lo) <= tolerance + 1e-9,
                      f"{mode}: test accuracy {acc:.4f} on the bed, {acc_lo:.4f} on loopback "
                      f"(within {tolerance})")
            bedtest.check_link_carried(env, j, before, bedtest.SOFTMAX_FLOATS, s["updates"])
        bedtest.check_no_shared_memory(env, j)
        if env.failures:
            bedtest.show_tail(j)
finally:
    b.down()
env.finish()
