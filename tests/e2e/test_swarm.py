"""test_swarm.py — 512 workers against one psd, from psbench swarm's one
process (each worker a connection of its own with its HELLO, its pushes and
a heartbeat every 500 ms): in async, ssp (staleness 4) and sync, psd's
STATUS at the end must show every rank live, none evicted, and each rank's
pushes as many as the driver saw acknowledged (--swarm-check). Speed is
not checked: figures belong to psbench, not to tests."""
import os

from harness import Env, run

env = Env()
psbench = env.prog("psbench")
env.check(os.path.exists(psbench), f"{psbench} was built")
if os.path.exists(psbench):
    rc, stdout, stderr = run([psbench, "swarm", "--swarm-workers", "512", "--swarm-seconds", "2",
                              "--swarm-check"], timeout_s=150)
    out = (stdout or "") + (stderr or "")
    print(out[-3000:])
    env.check(rc == 0, "psbench swarm with 512 workers: nobody evicted, every push counted")
    for mode in ("async", "ssp", "sync"):
        env.check(f"swarm_{mode}_512w" in out, f"{mode}: measured with 512 workers")
env.finish()
