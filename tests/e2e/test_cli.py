"""test_cli.py — every program answers --help and --version with exit 0,
refuses an unknown option with exit 2, and reports a missing or bad job file
in one line with exit 2."""
import time

from harness import Env, job_yaml, run, write

env = Env()
for prog in ("psd", "psworker", "psrun"):
    code, out, _ = run([env.prog(prog), "--help"], 10)
    env.check(code == 0 and "usage" in out.lower(), f"{prog} --help exits 0 with a usage text")
    code, out, _ = run([env.prog(prog), "--version"], 10)
    env.check(code == 0 and out.startswith(prog + " "), f"{prog} --version prints '{prog} X.Y.Z'")
    code, _, err = run([env.prog(prog), "--no-such-option"], 10)
    env.check(code == 2, f"{prog} refuses an unknown option with exit 2")

missing = env.tmp + "/missing.yaml"
for prog in ("psd", "psworker"):
    code, _, err = run([env.prog(prog), "--config", missing], 10)
    env.check(code == 2 and len(err.strip().splitlines()) == 1 and missing in err,
              f"{prog}: a missing job file is one line naming it, exit 2")

bad = write(env, "typo.yaml", job_yaml(env, "typo").replace("  lr: 0.1", "  lrate: 0.1"))
code, _, err = run([env.prog("psd"), "--config", bad], 10)
env.check(code == 2 and f"{bad}:" in err and 'did you mean "lr"' in err,
          "psd: an unknown key is named with file:line:col and a suggestion, exit 2")
# a worker whose server never answers gives up after heartbeat.deadline_ms
# with one line naming the server
nobody = write(env, "nobody.yaml", job_yaml(env, "nobody") + "heartbeat: {deadline_ms: 1500}\n")
t0 = time.monotonic()
code, _, err = run([env.prog("psworker"), "--config", nobody, "--rank", "0"], 30)
took = time.monotonic() - t0
endpoint = open(nobody).read().split("servers: [")[1].split("]")[0]
env.check(code == 1 and "no reply to HELLO within 1500 ms" in err and endpoint in err,
          f"psworker gives up on a silent server after deadline_ms: {err.strip()}")
env.check(took < 10, f"... in {took:.1f} s")
env.finish()
