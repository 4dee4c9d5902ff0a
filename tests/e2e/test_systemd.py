"""test_systemd.py — psd under systemd's protocols, without systemd: a test
NOTIFY_SOCKET receives READY=1 after binding, WATCHDOG=1 at half the
WATCHDOG_USEC interval, RELOADING=1/READY=1 around a SIGHUP reload (the new
learning rate applied, a broken job file refused) and STOPPING=1 on SIGTERM,
with the reason in STATUS=.
The units pass `systemd-analyze verify` and the cloud-init files pass
`cloud-init schema`."""
import os
import shutil
import signal
import socket
import subprocess
import time

from harness import Env, job_yaml, no_leftovers, run, write

env = Env()


def receive(sock, until_s):
    """(time, message) datagrams until the deadline."""
    got = []
    end = time.monotonic() + until_s
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            break
        got.append((time.monotonic(), data.decode()))
    return got


notify_path = os.path.join(env.tmp, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(notify_path)
job = write(env, "notify.yaml", job_yaml(env, "notify"))
penv = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="400000")
psd = subprocess.Popen([env.prog("psd"), "--config", job], env=penv, stderr=subprocess.PIPE,
                       text=True)
try:
    msgs = receive(sock, 2.0)
    texts = [m for _, m in msgs]
    env.check(bool(texts) and texts[0].startswith("READY=1\nSTATUS=shard 0/1: version 0"),
              f"READY=1 with a STATUS comes first: {texts[:1]}")
    pings = [t for t, m in msgs if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    env.check(len(pings) >= 5, f"{len(pings)} WATCHDOG=1 in 2 s (half of 0.4 s: about 10)")
    env.check(gaps and max(gaps) < 0.4, f"watchdog pings at most 0.4 s apart (max {max(gaps or [0]):.3f} s)")

    # SIGHUP with a new learning rate: applied, and systemd is told
    with open(job) as f:
        text = f.read()
    write(env, "notify.yaml", text.replace("lr: 0.1", "lr: 0.05"))
    psd.send_signal(signal.SIGHUP)
    texts = [m for _, m in receive(sock, 1.0) if m != "WATCHDOG=1"]
    env.check(len(texts) >= 2 and texts[0] == "RELOADING=1" and texts[1].startswith("READY=1"),
              f"SIGHUP: RELOADING=1 then READY=1 ({texts[:2]})")
    # a broken job file on reload changes nothing and psd keeps serving
    write(env, "notify.yaml", text.replace("lr: 0.1", "lr: -1"))
    psd.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    env.check(psd.poll() is None, "a broken job file on SIGHUP does not stop psd")

    psd.send_signal(signal.SIGTERM)
    texts = [m for _, m in receive(sock, 2.0) if m != "WATCHDOG=1"]
    env.check(any(t.split("\n")[0] == "STOPPING=1" for t in texts)
              and any("STATUS=psd (shard 0) was stopped by SIGTERM" in t for t in texts),
              f"SIGTERM: STOPPING=1 with the reason in STATUS= ({texts})")
    _, err = psd.communicate(timeout=10)
    print(err)
    env.check(psd.returncode == 0, "psd exits 0 after SIGTERM")
    env.check("reloaded" in err and "lr 0.05 (was 0.1)" in err, "the reload applied lr 0.05")
    env.check("reload refused, running settings kept:" in err and "lr" in err,
              "the broken reload is refused with the loader's message")
finally:
    if psd.poll() is None:
        psd.kill()
        psd.communicate()
    sock.close()
no_leftovers(env, job)

# the units, with ExecStart pointing at this build's programs
analyze = shutil.which("systemd-analyze")
env.check(analyze is not None, "systemd-analyze is installed (deploy/setup.sh --tests)")
if analyze:
    units = os.path.join(os.path.dirname(env.bin), "deploy", "systemd")
    udir = os.path.join(env.tmp, "units")
    os.makedirs(udir)
    paths = []
    for name in sorted(os.listdir(units)):
        text = open(os.path.join(units, name)).read()
        for prog in ("psd", "psworker"):
            text = text.replace(f"ExecStart=/usr/local/bin/{prog} ", f"ExecStart={env.bin}/{prog} ")
            text = text.replace(f"ExecStart=/usr/bin/{prog} ", f"ExecStart={env.bin}/{prog} ")
        paths.append(write(env, os.path.join("units", name), text))
    code, out, err = run([analyze, "verify"] + paths, 60)
    env.check(code == 0 and not err.strip(), f"systemd-analyze verify accepts the units {err.strip()}")

cloud_init = shutil.which("cloud-init")
env.check(cloud_init is not None, "cloud-init is installed (deploy/setup.sh --tests)")
if cloud_init:
    cdir = os.path.join(env.source, "deploy", "cloud-init")
    for name in sorted(os.listdir(cdir)):
        code, out, err = run([cloud_init, "schema", "-c", os.path.join(cdir, name)], 60)
        env.check(code == 0 and "Valid cloud-config" in out, f"cloud-init schema accepts {name} {err.strip()}")
# the .deb carries the programs, the library, the units and the examples
build = os.path.dirname(env.bin)
code, out, err = run(["cpack", "-G", "DEB", "-B", os.path.join(env.tmp, "deb")], 300, cwd=build)
debs = [f for f in os.listdir(os.path.join(env.tmp, "deb"))
        if f.endswith(".deb")] if code == 0 else []
env.check(len(debs) == 1, f"cpack -G DEB makes one package {err.strip()[-300:]}")
if debs:
    code, out, _ = run(["dpkg-deb", "-c", os.path.join(env.tmp, "deb", debs[0])], 60)
    names = [line.split()[-1] for line in out.splitlines()]
    for want in ("bin/psd", "bin/psworker", "bin/psrun", "bin/psctl", "include/psd/psworker.h",
                 "lib/systemd/system/psd.service", "lib/systemd/system/psworker@.service",
                 "share/psd/examples/line.yaml", "share/psd/cloud-init/server.yaml"):
        env.check(any(n.endswith(want) for n in names), f"the .deb holds {want}")
    env.check(not any("/examples/out/" in n for n in names), "the .deb holds no example outputs")
env.finish()
