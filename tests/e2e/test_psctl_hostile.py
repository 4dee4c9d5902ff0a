"""test_psctl_hostile.py — a worker whose host name holds terminal escapes
(a window title, a cleared screen, BEL, DEL, U+009B CSI, a lone 0x9b byte)
joins a live job: the name travels in its HELLO as psworker sends it,
taken from a UTS namespace of its own (unshare -Ur --uts, then
sethostname). psctl status and psctl top (on a pipe) show the name with
those bytes written as \\xNN, and no ESC, BEL, DEL or C1 byte reaches their
output; status --json still carries the name as it came. Skipped where
unprivileged user namespaces are off. Every wait is bounded; processes are
killed by PID at the end."""
import json
import os
import subprocess

from harness import Env, Proc, free_port, no_leftovers, stop_procs, wait_for, write

env = Env()
# 37 bytes, under the 63 a host name may have
HOSTILE = b"evil\x1b]0;pwned\x07\x1b[2J\x1b[H\x7f\xc2\x9b2J\x9bx"
SHOWN = b"evil\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H\\x7f\\xc2\\x9b2J\\x9bx"
SET_HOST = ("import os, socket, sys; socket.sethostname(bytes.fromhex(sys.argv[1])); "
            "os.execv(sys.argv[2], sys.argv[2:])")

probe = subprocess.run(["unshare", "-Ur", "--uts", "/usr/bin/python3", "-c", SET_HOST,
                        HOSTILE.hex(), "/bin/true"], capture_output=True, timeout=30)
if probe.returncode != 0:
    env.skip("cannot set a host name in a user namespace here (unshare -Ur --uts: "
             f"{probe.stderr.decode(errors='replace').strip()})")

path = write(env, "hostile.yaml", f"""job: psctl-hostile
mode: sync
workers: 1
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
optimizer: {{type: sgd, lr: 0.05}}
training: {{epochs: 20000, batch_size: 32, seed: 7}}
shared_memory: false
""")


def psctl(*args):
    """(exit code, stdout bytes, stderr bytes) of psctl on the job."""
    p = subprocess.run([env.prog("psctl"), "--config", path, "--timeout-ms", "3000"] + list(args),
                       capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def worker_json():
    code, out, _ = psctl("--json", "status")
    try:
        obj = json.loads(out.decode(errors="surrogateescape"))
    except ValueError:
        return None
    rows = obj.get("workers", []) if code == 0 else []
    return rows[0] if rows and rows[0].get("pushes", 0) > 0 else None


def no_control_bytes(what, out):
    """out is UTF-8 without C0 controls (but newlines), DEL or C1 controls."""
    text = out.decode(errors="surrogateescape")
    bad = sorted({hex(ord(c)) for c in text
                  if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f or
                  0xdc80 <= ord(c) <= 0xdcff})  # the last: a byte that is not UTF-8
    env.check(not bad, f"{what}: no control byte in the output ({bad})")


s = Proc(env, "psd", [env.prog("psd"), "--config", path])
env.check(wait_for(lambda: "listening on" in s.text(), 20, "psd to listen"), "psd listens")
w = Proc(env, "w0", ["unshare", "-Ur", "--uts", "/usr/bin/python3", "-c", SET_HOST,
                     HOSTILE.hex(), env.prog("psworker"), "--config", path, "--rank", "0"])
env.check(wait_for(lambda: worker_json() is not None, 60, "the worker to push"),
          "the worker of the hostile host name joins and pushes")

row = worker_json() or {}
env.check(row.get("host", "").encode(errors="surrogateescape") == HOSTILE,
          f"status --json gives the host name as it came ({row.get('host')!r})")

code, out, err = psctl("status")
print(out.decode(errors="replace"))
env.check(code == 0, f"psctl status exits 0 ({code}, {err!r})")
env.check(SHOWN in out, "status shows the host name with its control bytes as \\xNN")
no_control_bytes("status", out + err)

code, out, err = psctl("--interval", "100", "--count", "2", "top")
env.check(code == 0 and out.count(SHOWN) == 2,
          f"top on a pipe shows the escaped name in each of its 2 tables ({code})")
no_control_bytes("top", out + err)

stop_procs(env)
no_leftovers(env, path)
env.finish()
