"""test_example.py — docs/library.md's libpsworker example, a program of our
user's own, fits y = 3x + 1 against a real psd, and psd then stops cleanly
on SIGTERM with exit 0."""
import os
import signal
import subprocess
import time

from harness import Env, free_port, no_leftovers, run, write

env = Env()
port = free_port()
text = open(os.path.join(env.source, "config", "examples", "line.yaml")).read()
text = text.replace("tcp://127.0.0.1:7071", f"tcp://127.0.0.1:{port}")
text = text.replace("data/line.csv", os.path.join(env.data, "line.csv"))
job = write(env, "line.yaml", text)
psd = subprocess.Popen([env.prog("psd"), "--config", job], stderr=subprocess.PIPE, text=True)
try:
    code, out, err = run([env.prog("example_fit_line"), f"tcp://127.0.0.1:{port}"], 60)
    print(out, err)
    env.check(code == 0, "example exits 0")
    if code == 0:
        w, b = [float(part.split("=")[1]) for part in out.strip().split(",")]
        env.check(abs(w - 3) < 0.01 and abs(b - 1) < 0.01, f"example fits w={w} ~ 3, b={b} ~ 1")
finally:
    psd.send_signal(signal.SIGTERM)
    try:
        _, err = psd.communicate(timeout=10)
        print(err)
        env.check(psd.returncode == 0, f"psd exits 0 on SIGTERM (got {psd.returncode})")
    except subprocess.TimeoutExpired:
        psd.kill()
        psd.communicate()
        env.check(False, "psd stops within 10 s of SIGTERM")
no_leftovers(env, job)

# the same program built as a user would: against the installed header and
# library, found through pkg-config
prefix = os.path.join(env.tmp, "prefix")
code, out, err = run(["cmake", "--install", os.path.dirname(env.bin), "--prefix", prefix], 120)
env.check(code == 0, "cmake --install into a scratch prefix")
pc_dirs = [os.path.join(prefix, d, "pkgconfig") for d in ("lib", "lib64", "lib/x86_64-linux-gnu")]
penv = dict(os.environ, PKG_CONFIG_PATH=":".join(pc_dirs))
code, flags, err = run(["pkg-config", "--cflags", "--libs", "psworker"], 10, env=penv)
env.check(code == 0, f"pkg-config finds psworker: {flags.strip()} {err.strip()}")
if code == 0:
    exe = os.path.join(env.tmp, "fit_line")
    src = os.path.join(env.source, "worker", "example_fit_line.c")
    # a sanitizer build's library needs the program built the same way
    cache = open(os.path.join(os.path.dirname(env.bin), "CMakeCache.txt")).read()
    san = [l.split("=", 1)[1] for l in cache.splitlines() if l.startswith("PS_SANITIZER:")]
    extra = [f"-fsanitize={san[0]}"] if san and san[0] else []
    code, out, err = run(["cc", src, "-o", exe] + extra + flags.split(), 60)
    env.check(code == 0, f"the example compiles against the installed library {err.strip()}")
    libdir = [f[2:] for f in flags.split() if f.startswith("-L")]
    renv = dict(os.environ, LD_LIBRARY_PATH=":".join(libdir))
    code, out, err = run([exe], 10, env=renv)
    env.check(code == 2 and "usage" in err, "the installed example runs (usage without arguments)")
env.finish()
