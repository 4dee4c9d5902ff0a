"""test_sparse_kills.py — a shard's sparse table survives SIGKILL during
its checkpoints, as the dense θ does (test_checkpoint_kills.py): a
sparse_logistic job trains on a generated click log and psd writes its
last checkpoint (format 2: the table's live rows after the arrays); then
psd is started from it and SIGKILLed 30 times at random moments while it
writes checkpoints every 50 ms. Every restart loads a checkpoint with all
of the table's rows, every file on disk is whole (sizes from its table
directory, CRC-32), and a file whose rows were cut short is refused with
one line and the previous one loaded."""
import os
import random
import re
import signal
import struct
import time
import zlib

from harness import Env, Proc, free_port, no_leftovers, psd_listening, run, stop_procs, write

env = Env()
KILLS = 30
PREFIX = os.path.join(env.tmp, "clicks")
code, _, err = run([env.prog("psgen"), "clicks", "--rows", "20000", "--test-rows", "1000",
                    "--seed", "5", "--out", PREFIX], 120)
env.check(code == 0, f"psgen writes the log ({err.strip()})")
ckpt = os.path.join(env.tmp, "ckpt")
job = write(env, "skills.yaml", f"""job: skills
mode: async
workers: 1
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: sparse_logistic}}
data: {{train: {PREFIX}.train.tsv, format: criteo}}
optimizer: {{type: adagrad, lr: 0.05}}
training: {{epochs: 1, batch_size: 256}}
checkpoint: {{dir: {ckpt}, every_seconds: 0.05, keep: 2}}
""")


def check_file(path):
    """(None, rows) when the file is a whole, valid checkpoint, else (what is
    wrong, 0). Format 2: header, arrays' table, table directory, ranks'
    table, arrays' floats, each table's rows (key, version, floats), trailer."""
    data = open(path, "rb").read()
    if len(data) < 144 or data[:8] != b"PSDCKPT1":
        return "bad header", 0
    fmt, narrays = struct.unpack_from("<II", data, 8)
    nranks = struct.unpack_from("<I", data, 84)[0]
    at = 128 + 40 * narrays
    counts = [struct.unpack_from("<Q", data, 128 + 40 * i + 32)[0] for i in range(narrays)]
    rows = 0
    row_bytes = 0
    if fmt == 2:
        ntables = struct.unpack_from("<I", data, at)[0]
        for t in range(ntables):
            dim, row_floats = struct.unpack_from("<II", data, at + 8 + 64 * t + 32)
            n = struct.unpack_from("<Q", data, at + 8 + 64 * t + 48)[0]
            rows += n
            row_bytes += n * (16 + 4 * row_floats)
        at += 8 + 64 * ntables
    size = at + 40 * nranks + 4 * sum(counts) + row_bytes + 16
    if size != len(data):
        return f"{len(data)} bytes, expected {size}", 0
    if data[-8:] != b"PSDCKEND":
        return "no end marker", 0
    if struct.unpack_from("<I", data, len(data) - 16)[0] != zlib.crc32(data[:-16]):
        return "checksum mismatch", 0
    return None, rows


# train: psd's last checkpoint, on SIGTERM after the job, holds the table
psd = Proc(env, "psd-train", [env.prog("psd"), "--config", job])
worker = Proc(env, "worker", [env.prog("psworker"), "--config", job, "--rank", "0"])
env.check(worker.wait(120) == 0, "the worker trains the job")
psd.p.send_signal(signal.SIGTERM)
env.check(psd.wait(60) == 0, "psd exits 0 on SIGTERM, after its last checkpoint")
files = sorted(n for n in os.listdir(ckpt) if n.endswith(".ckpt")) if os.path.isdir(ckpt) else []
why, trained_rows = check_file(os.path.join(ckpt, files[-1])) if files else ("none", 0)
env.check(why is None and trained_rows > 10000,
          f"the last checkpoint is valid and holds the table's {trained_rows} rows ({why})")
stop_procs(env)


def start():
    return psd_listening(env, job)


rng = random.Random(42)
loaded_rows = []
bad_files = []
for i in range(KILLS):
    p, lines, t = start()
    loaded_rows += [int(m.group(1)) for l in lines
                    for m in [re.search(r"checkpoint loaded: table w, (\d+) rows", l)] if m]
    time.sleep(rng.uniform(0.05, 0.3))
    p.send_signal(signal.SIGKILL)
    p.wait()
    t.join(2)
    names = sorted(n for n in os.listdir(ckpt) if n.endswith(".ckpt"))
    for name in names:  # the newest is the trained table's (keep 2: one before it)
        why, rows = check_file(os.path.join(ckpt, name))
        if why or (name == names[-1] and rows != trained_rows):
            bad_files.append(f"{name}: {why or f'{rows} rows'}")
print(f"{KILLS} kills: loaded {len(loaded_rows)} times, rows {sorted(set(loaded_rows))}")
env.check(len(loaded_rows) == KILLS and set(loaded_rows) == {trained_rows},
          f"every restart loaded the table's {trained_rows} rows")
env.check(not bad_files, f"every .ckpt file on disk is whole, the newest with every row "
          f"{bad_files[:3]}")

# a newer file cut inside its rows is refused, the good one loaded
good = sorted(n for n in os.listdir(ckpt) if n.endswith(".ckpt"))[-1]
data = open(os.path.join(ckpt, good), "rb").read()
cut = os.path.join(ckpt, "skills-shard0-00000000000000099999.ckpt")
open(cut, "wb").write(data[: len(data) - 1000])
p, lines, t = start()
p.send_signal(signal.SIGTERM)
p.wait(timeout=30)
t.join(2)
print("\n".join(lines[:5]))
env.check(any("99999.ckpt skipped" in l for l in lines), "the cut file is refused with one line")
env.check(any(f"checkpoint loaded: table w, {trained_rows} rows" in l for l in lines),
          "the previous checkpoint's rows are loaded")
no_leftovers(env, job)
env.finish()
