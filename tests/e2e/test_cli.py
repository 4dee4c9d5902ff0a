"""test_cli.py — the four programs follow one command-line convention
(common/args.h): --help prints the usage on stdout and exits 0, --version
prints "prog X.Y.Z" and exits 0, and every usage error (an unknown option, a
missing value, a bad number, a missing operand) is exactly one line
"prog: what is wrong (try 'prog --help')" on stderr with exit 2; a missing
or bad job file is one line naming it, exit 2."""
import time

from harness import Env, build_option, job_yaml, run, write

env = Env()
version = build_option(env, "CMAKE_PROJECT_VERSION")
PROGS = ("psd", "psworker", "psrun", "psctl")


def usage_error(prog, args, what):
    """prog with args says exactly `prog: what (try 'prog --help')`, exit 2."""
    code, out, err = run([env.prog(prog), *args], 10)
    want = f"{prog}: {what} (try '{prog} --help')\n"
    ok = code == 2 and err == want and out == ""
    got = "" if ok else f" (got exit {code}, {err.strip()!r})"
    env.check(ok, f"{prog} {' '.join(args)}: exit 2, {want.strip()}{got}")


for prog in PROGS:
    code, out, err = run([env.prog(prog), "--help"], 10)
    env.check(code == 0 and out.startswith(f"usage: {prog} ") and err == "",
              f"{prog} --help exits 0 with its usage on stdout")
    code, out, err = run([env.prog(prog), "--version"], 10)
    env.check(code == 0 and out == f"{prog} {version}\n" and err == "",
              f"{prog} --version prints '{prog} {version}' (got {out.strip()!r})")
    usage_error(prog, ["--no-such-option"], 'unknown option "--no-such-option"')
    usage_error(prog, ["-q"], 'unknown option "-q"')
    usage_error(prog, ["--help=yes"], "--help takes no value")

# a value missing, and numbers out of range or not numbers
for prog in ("psd", "psworker", "psctl"):
    usage_error(prog, ["--config"], "--config needs a value")
usage_error("psrun", ["--summary-json"], "--summary-json needs a value")
usage_error("psd", ["--config", "x.yaml", "--shard", "-1"],
            "--shard: must be a number from 0 to 255, got -1, which is negative")
usage_error("psctl", ["--config", "x.yaml", "top", "--shard", "-1"],
            "--shard: must be a number from 0 to 255, got -1, which is negative")
usage_error("psd", ["--config", "x.yaml", "--shard", "1x"],
            "--shard: must be a number from 0 to 255, got 1x")
usage_error("psworker", ["--config", "x.yaml", "--rank", "-1"],
            "--rank: must be a number from 0 to 4095, got -1, which is negative")
usage_error("psworker", ["--config", "x.yaml", "--progress-fd", "three"],
            "--progress-fd: must be a number from 0 to 2147483647, got three")
usage_error("psctl", ["--config", "x.yaml", "--timeout-ms", "1e3", "status"],
            "--timeout-ms: must be a number from 0 to 86400000, got 1e3")
usage_error("psctl", ["--config", "x.yaml", "--interval", "5", "top"],
            "--interval: must be a number from 10 to 86400000, got 5")
usage_error("psd", ["--config", "x.yaml", "--log-level", "loud"],
            "--log-level: must be one of error, warn, info or debug, got loud")
# what is required, and operands
usage_error("psd", [], "--config is required")
usage_error("psworker", ["--rank", "0"], "--config is required")
usage_error("psd", ["--config", "x.yaml", "extra"], 'unexpected argument "extra"')
usage_error("psrun", [], "expected one job file, got 0 arguments")
usage_error("psrun", ["a.yaml", "b.yaml"], "expected one job file, got 2 arguments")
usage_error("psctl", [], "expected one command: status, top, checkpoint or keygen")
usage_error("psctl", ["--config", "x.yaml", "frob"],
            'unknown command "frob": status, top, checkpoint or keygen')
usage_error("psctl", ["status"], "--config is required")
usage_error("psctl", ["keygen"], "keygen takes one NAME (writes NAME.key and NAME.key_secret)")
usage_error("psctl", ["--c", "x.yaml", "status"],
            'option "--c" is ambiguous: --config, --count')

missing = env.tmp + "/missing.yaml"
for prog, args in (("psd", ["--config", missing]), ("psworker", ["--config", missing]),
                   ("psctl", ["--config", missing, "status"]), ("psrun", [missing])):
    code, _, err = run([env.prog(prog), *args], 10)
    want = f"{prog}: {missing}: cannot open: No such file or directory\n"
    env.check(code == 2 and err == want,
              f"{prog}: a missing job file is one line naming it, exit 2 ({err.strip()!r})")

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
