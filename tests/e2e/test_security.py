"""test_security.py — CURVE (security.curve): a CURVE job trains to the same
accuracy as the plain one; an unlisted worker key, a plain client, a client
with the wrong server key and a worker key asking for a checkpoint are
refused and logged while the job completes, and a worker key may read the
job's status (every worker asks it at its end: the summary lists every
rank, psd refuses nothing); a recording TCP relay sees the bytes of the
final θ without CURVE and never with it; secret key files others can read
are refused with one line."""
import os
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import Env, free_port, job_yaml, no_leftovers, psrun, run, write

env = Env()
keys = os.path.join(env.tmp, "keys")
os.makedirs(os.path.join(keys, "workers"))
os.makedirs(os.path.join(keys, "admins"))


def keygen(name):
    code, out, err = run([env.prog("psctl"), "keygen", os.path.join(keys, name)], 30)
    env.check(code == 0, f"psctl keygen {name} exits 0 ({err.strip()})")
    with open(os.path.join(keys, name + ".key")) as f:
        return [l.split('"')[1] for l in f if "public-key" in l][0]


pub = {n: keygen(n) for n in ("psd", "worker", "admin", "intruder")}
env.check(os.stat(os.path.join(keys, "worker.key_secret")).st_mode & 0o777 == 0o600,
          "keygen writes the secret key with mode 0600")
os.link(os.path.join(keys, "worker.key"), os.path.join(keys, "workers", "worker.key"))
os.link(os.path.join(keys, "admin.key"), os.path.join(keys, "admins", "admin.key"))

FAST_HB = "heartbeat: {interval_ms: 200, timeout_ms: 2000, deadline_ms: 3000}\n"


def curve(client="worker", server_public="psd", server_secret="psd"):
    return (f"security:\n  curve:\n"
            f"    server_secret_key: {keys}/{server_secret}.key_secret\n"
            f"    server_public_key: {keys}/{server_public}.key\n"
            f"    client_secret_key: {keys}/{client}.key_secret\n"
            f"    authorized_workers: {keys}/workers/\n"
            f"    authorized_admins: {keys}/admins/\n")


def with_server(text, endpoint):
    return "\n".join(f"servers: [{endpoint}]" if l.startswith("servers:") else l
                     for l in text.splitlines()) + "\n"


# ---- 1. the same accuracy with and without CURVE (loopback, psrun) --------
acc = {}
for name, extra in (("plain", ""), ("curve", curve())):
    job = write(env, f"train-{name}.yaml", job_yaml(env, "sec-train", extra=extra))
    code, summary, err = psrun(env, job)
    env.check(code == 0 and summary is not None, f"{name}: psrun exits 0")
    if summary is not None:
        acc[name] = summary["test_metric"]["value"]
        # each worker asks psd for the job's status at its end (its own key)
        ranks = [r["rank"] for r in summary["ranks"]]
        env.check(ranks == [0, 1], f"{name}: the summary lists every rank ({ranks})")
    refusals = [l for l in err.splitlines() if "refused" in l and "refused 0 " not in l]
    env.check(not refusals, f"{name}: psd refused nothing ({refusals[:3]})")
    if name == "curve":
        env.check("CURVE refused 0 connections or requests" in err,
                  "curve: psd counts no refusal at its stop")
    no_leftovers(env, job)
env.check(len(acc) == 2, "both runs wrote their summaries")
if len(acc) == 2:
    env.check(acc["curve"] >= 0.95 and abs(acc["curve"] - acc["plain"]) < 1e-9,
              f"CURVE job's test accuracy {acc['curve']:.4f} == plain {acc['plain']:.4f}")

# ---- 2. refused clients are logged; the job still completes -------------
port = free_port()
base = with_server(job_yaml(env, "sec-refuse", epochs=30, extra=FAST_HB + curve()),
                   f"tcp://127.0.0.1:{port}")
job = write(env, "refuse.yaml", base)
log_path = os.path.join(env.tmp, "psd-refuse.log")
with open(log_path, "w") as log:
    psd = subprocess.Popen([env.prog("psd"), "--config", job, "--exit-when-done"],
                           stdout=log, stderr=subprocess.STDOUT)
time.sleep(0.5)
refused_jobs = {
    "unlisted worker key": curve(client="intruder"),
    "plain client": "",
    "wrong server key": curve(server_public="intruder"),
}
for what, extra in refused_jobs.items():
    text = with_server(job_yaml(env, "sec-refuse", epochs=30, extra=FAST_HB + extra),
                       f"tcp://127.0.0.1:{port}")
    path = write(env, f"refused-{what.replace(' ', '-')}.yaml", text)
    code, out, err = run([env.prog("psworker"), "--config", path], 30)
    env.check(code == 1 and "cannot join" in err and "epoch" not in err,
              f"{what}: psworker never joins (exit {code}: {err.strip()[-120:]})")
code, out, err = run([env.prog("psctl"), "--config", job, "--key",
                      os.path.join(keys, "worker.key_secret"), "status"], 30)
env.check(code == 0 and "version" in out,
          f"a worker key may read the job's status, as workers do at their end ({err.strip()})")
code, out, err = run([env.prog("psctl"), "--config", job, "--key",
                      os.path.join(keys, "worker.key_secret"), "checkpoint"], 30)
env.check(code == 1 and "PS_EACCESS" in err,
          f"a worker key asking for a checkpoint is refused ({err.strip()})")
code, out, err = run([env.prog("psctl"), "--config", job, "--key",
                      os.path.join(keys, "admin.key_secret"), "status"], 30)
env.check(code == 0 and "version" in out, f"an admin key gets psctl status ({err.strip()})")
workers = [subprocess.Popen([env.prog("psworker"), "--config", job, "--rank", str(r)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for r in range(2)]
for r, w in enumerate(workers):
    try:
        out, err = w.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        w.kill()
        out, err = w.communicate()
    env.check(w.returncode == 0, f"authorized worker {r} completes the job next to them")
try:
    psd.wait(timeout=30)
except subprocess.TimeoutExpired:
    psd.kill()
    psd.wait()
env.check(psd.returncode == 0, f"psd exits 0 when the job is complete ({psd.returncode})")
with open(log_path) as f:
    log_text = f.read()
print(log_text[-1500:])
env.check(f"refused CURVE key {pub['intruder']} from 127.0.0.1" in log_text,
          "psd logs the unlisted key with the peer's address")
env.check(log_text.count(f"refused CURVE key {pub['intruder']}") == 1,
          "the unlisted key is logged once although it retried")
env.check("refused a client without CURVE" in log_text or
          "refused a client that broke off the handshake (likely one without CURVE)" in log_text,
          "psd logs the plain client")
env.check("refused a client with the wrong server key" in log_text,
          "psd logs the client with the wrong server key")
env.check(f"refused CHECKPOINT from key {pub['worker']} at 127.0.0.1" in log_text,
          "psd logs the worker key that asked for a checkpoint")
env.check("refused STATUS" not in log_text, "no STATUS of a worker key is refused")
refused = [l for l in log_text.splitlines() if "CURVE refused" in l]
env.check(len(refused) == 1 and int(refused[0].split("CURVE refused ")[1].split()[0]) >= 4,
          f"psd counts the refusals ({refused})")
# 2 workers, 30 epochs of 8 steps, sync: 240 pulls for rounds + final pulls;
# a refused client never got as far as a PULL, let alone a PULL_REPLY
stopped = [l for l in log_text.splitlines() if "stopped: version" in l]
env.check(len(stopped) == 1 and " 0 errors" in stopped[0],
          f"no request of a refused client reached the engine ({stopped})")
no_leftovers(env, job)


# ---- 3. a recording relay sees θ in the clear only without CURVE --------
def relay(listen_port, target_port, captured, stop):
    """Forwards TCP connections to target_port, appending what the server
    sends to captured."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(8)
    ls.settimeout(0.2)

    def pump(src, dst, record):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if record:
                    captured.append(b)
                dst.sendall(b)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    while not stop.is_set():
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        try:
            s = socket.create_connection(("127.0.0.1", target_port), timeout=5)
        except OSError:
            c.close()  # psd not up yet: the client connects again
            continue
        s.settimeout(None)
        threading.Thread(target=pump, args=(c, s, False), daemon=True).start()
        threading.Thread(target=pump, args=(s, c, True), daemon=True).start()
    ls.close()


def theta_seen(name, extra):
    port, relay_port = free_port(), free_port()
    out_dir = os.path.join(env.tmp, f"out-{name}")
    text = job_yaml(env, f"sec-relay-{name}", workers=1, epochs=5, output=out_dir,
                    extra="shared_memory: false\n" + extra)
    psd_job = write(env, f"relay-{name}-psd.yaml", with_server(text, f"tcp://127.0.0.1:{port}"))
    w_job = write(env, f"relay-{name}-worker.yaml",
                  with_server(text, f"tcp://127.0.0.1:{relay_port}"))
    captured, stop = [], threading.Event()
    t = threading.Thread(target=relay, args=(relay_port, port, captured, stop), daemon=True)
    t.start()
    p = subprocess.Popen([env.prog("psd"), "--config", psd_job, "--exit-when-done"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):  # until psd listens (10 s at most)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    code, out, err = run([env.prog("psworker"), "--config", w_job], 120)
    env.check(code == 0, f"{name}: the worker trains through the relay ({err.strip()[-200:]})")
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    stop.set()
    t.join(5)
    stream = b"".join(captured)
    with open(os.path.join(out_dir, "w.npy"), "rb") as f:  # .npy v1: magic, header, data
        raw = f.read()
    needle = raw[10 + struct.unpack("<H", raw[8:10])[0]:]
    env.check(len(needle) == 30 * 4, f"{name}: the final w is 30 float32s")
    env.check(len(stream) > 10000, f"{name}: the relay recorded {len(stream)} bytes from psd")
    return needle in stream


env.check(theta_seen("plain", ""), "without CURVE the final θ's bytes cross the wire in clear")
env.check(not theta_seen("curve", curve()), "with CURVE the final θ's bytes never appear")

# ---- 4. secret key files others can read are refused --------------------
os.chmod(os.path.join(keys, "psd.key_secret"), 0o644)
job = write(env, "open-secret.yaml", job_yaml(env, "sec-open", extra=curve()))
code, out, err = run([env.prog("psd"), "--config", job], 30)
env.check(code == 2 and err.count("\n") == 1 and "psd.key_secret: mode 0644 lets others read"
          in err, f"psd refuses a 0644 secret key with one line ({err.strip()})")
os.chmod(os.path.join(keys, "worker.key_secret"), 0o644)
code, out, err = run([env.prog("psworker"), "--config", job], 30)
env.check(code != 0 and "worker.key_secret: mode 0644 lets others read" in err,
          f"psworker refuses a 0644 secret key ({err.strip()[-160:]})")
env.finish()
