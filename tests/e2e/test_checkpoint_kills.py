"""test_checkpoint_kills.py — psd SIGKILLed 50 times at random moments while
it writes checkpoints of a 16 MB shard every 50 ms: every restart loads a
valid checkpoint and never a corrupt one (each file on disk is checked
here too, with its CRC-32). Then a truncated and a bit-flipped copy, newer
than the good one, are each refused with a one-line warning and the good
checkpoint is loaded."""
import os
import random
import re
import signal
import struct
import time
import zlib

from harness import Env, free_port, no_leftovers, psd_listening, write

env = Env()
KILLS = 50
ckpt = os.path.join(env.tmp, "ckpt")
job = write(env, "kills.yaml", f"""job: kills
mode: async
workers: 1
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: linear, features: 4000000}}   # 16 MB of θ; psd reads no data
data: {{train: {env.data}/breast_cancer.train.csv}}
checkpoint: {{dir: {ckpt}, every_seconds: 0.05, keep: 2}}
""")


def check_file(path):
    """None when the file is a whole, valid checkpoint, else what is wrong."""
    data = open(path, "rb").read()
    if len(data) < 144 or data[:8] != b"PSDCKPT1":
        return "bad header"
    narrays = struct.unpack_from("<I", data, 12)[0]
    nranks = struct.unpack_from("<I", data, 84)[0]  # the per-rank table after the array table
    size = 128 + 40 * narrays + 40 * nranks + 16
    for i in range(narrays):
        size += 4 * struct.unpack_from("<Q", data, 128 + 40 * i + 32)[0]
    if size != len(data):
        return f"{len(data)} bytes, expected {size}"
    if data[-8:] != b"PSDCKEND":
        return "no end marker"
    if struct.unpack_from("<I", data, len(data) - 16)[0] != zlib.crc32(data[:-16]):
        return "checksum mismatch"
    return None


def start():
    return psd_listening(env, job)


def valid_files():
    if not os.path.isdir(ckpt):
        return []
    return [n for n in os.listdir(ckpt) if n.endswith(".ckpt")
            and check_file(os.path.join(ckpt, n)) is None]


rng = random.Random(42)
expected = loaded = skipped = 0
missed = []
bad_files = []
for i in range(KILLS):
    had = valid_files()  # a start after a kill before the first write has none
    p, lines, t = start()
    did_load = any("checkpoint loaded:" in l for l in lines)
    if had:
        expected += 1
        loaded += did_load
        if not did_load:
            missed.append(i)
    skipped += sum("skipped" in l for l in lines)
    time.sleep(rng.uniform(0.05, 0.4))
    p.send_signal(signal.SIGKILL)
    p.wait()
    t.join(2)
    for name in os.listdir(ckpt) if os.path.isdir(ckpt) else []:
        if name.endswith(".ckpt"):
            why = check_file(os.path.join(ckpt, name))
            if why:
                bad_files.append(f"{name}: {why}")
print(f"{KILLS} kills: {expected} restarts found a checkpoint, {loaded} loaded it, "
      f"{skipped} files skipped")
env.check(expected >= KILLS // 2, f"most restarts found a checkpoint on disk ({expected})")
env.check(loaded == expected, f"every restart that found one loaded it (missed: {missed})")
env.check(skipped == 0, f"no restart met a corrupt checkpoint ({skipped})")
env.check(not bad_files, f"every .ckpt file on disk is whole and valid {bad_files[:3]}")

# a truncated and a bit-flipped copy that look newer than the good one
good = sorted(n for n in os.listdir(ckpt) if n.endswith(".ckpt"))[-1]
good_path = os.path.join(ckpt, good)
for name in os.listdir(ckpt):
    if name != good:
        os.unlink(os.path.join(ckpt, name))
data = bytearray(open(good_path, "rb").read())
open(os.path.join(ckpt, "kills-shard0-00000000000000000098.ckpt"), "wb").write(data[: len(data) // 2])
data[1000] ^= 0x04
open(os.path.join(ckpt, "kills-shard0-00000000000000000099.ckpt"), "wb").write(data)
p, lines, t = start()
p.send_signal(signal.SIGTERM)
p.wait(timeout=30)
t.join(2)
print("\n".join(lines[:4]))
warnings = [l for l in lines if "skipped" in l]
env.check(len(warnings) == 2, "two checkpoints are refused, one warning line each")
env.check(any(re.search(r"00099\.ckpt skipped: checksum mismatch \(corrupt\)", l) for l in warnings),
          "the bit-flipped one: checksum mismatch")
env.check(any(re.search(r"00098\.ckpt skipped: \d+ bytes, expected \d+ \(truncated or torn\)", l)
              for l in warnings), "the truncated one: truncated or torn")
env.check(any(f"checkpoint loaded: {good_path}" in l for l in lines),
          "the previous, good checkpoint is loaded")
env.check(p.returncode == 0, "psd exits 0 on SIGTERM")
no_leftovers(env, job)
env.finish()
