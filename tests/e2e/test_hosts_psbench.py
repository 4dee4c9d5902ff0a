"""test_hosts_psbench.py — psbench's across-hosts mode (--netns-*) measures
with as many workers as namespaces it is given: psd in one namespace of
the bed (tests/hosts/bed.py) and 4 worker namespaces give the push + pull
figures of 1, 2 and 4 workers, each beside raw ZeroMQ over the same links.
(It measured 2 workers at most, however many namespaces.) Only the 1k-float
figures (--only pushpull_1k_hosts), to keep it short. Needs root: exits 77
(skipped) without."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from harness import Env  # noqa: E402
import bedtest  # noqa: E402
import jobs  # noqa: E402

env = Env()
WORKERS = 4
b = bedtest.bed_or_skip(jobs.hosts_for(1, WORKERS))

cmd = [env.prog("psbench"), "--json", "--reps", "0.1", "--only", "pushpull_1k_hosts",
       "--netns-server", b.ns("psd0"),
       "--netns-workers", ",".join(b.ns(f"w{r}") for r in range(WORKERS)),
       "--host", b.addr("psd0")]
try:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    env.check(p.returncode == 0, f"psbench exits 0 (exit {p.returncode}: {p.stderr.strip()[-500:]})")
    figs = {f["figure"]: f for f in json.loads(p.stdout)} if p.returncode == 0 else {}
    print(json.dumps(sorted(figs)), flush=True)
    for w in (1, 2, WORKERS):
        f = figs.get(f"pushpull_1k_hosts_{w}w")
        env.check(f is not None and f["ours"] > 0 and f["reference"] > 0,
                  f"a figure of {w} worker(s) across hosts, beside its raw ZeroMQ reference")
    env.check(not any(n.startswith("pushpull_1M") for n in figs),
              "--only pushpull_1k_hosts keeps the 1M figures out")
finally:
    b.down()
env.finish()
