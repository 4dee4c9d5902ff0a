"""test_checkpoint_prune.py — issue 10, case 1 and the checkpoint half of
case 8, on a real psd. Two 200-byte copies of a checkpoint named with higher
versions (…99999999999999999998/99.ckpt, keep: 2) are skipped with a warning
and never make psd delete what it writes or loaded; the same job edited from
features 30 to 20 (same name and folder) is refused at start in one line with
exit 2 and nothing deleted; a checkpoint folder that cannot be written
(under a regular file, or in /proc) is refused at start naming
checkpoint.dir; and a write that fails later is the answer psctl checkpoint
gets, not a timeout."""
import os
import re
import signal
import struct
import subprocess
import threading
import zlib

from harness import Env, job_yaml, no_leftovers, run, write

env = Env()


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
    if data[-8:] != b"PSDCKEND" or struct.unpack_from("<I", data, len(data) - 16)[0] != zlib.crc32(
            data[:-16]):
        return "checksum"
    return None


def version_of(path):
    return int(re.search(r"-(\d{20})\.ckpt$", path).group(1))


class Psd:
    """A psd on a job file, its stderr collected line by line."""

    def __init__(self, job):
        self.p = subprocess.Popen([env.prog("psd"), "--config", job], stderr=subprocess.PIPE,
                                  text=True)
        self.lines = []
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stderr:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.lines.append(None)  # end of stream
            self.cv.notify_all()

    def wait_for(self, pred, timeout_s):
        """True once a line matches pred (within timeout_s), False at the end or timeout."""
        with self.cv:
            return self.cv.wait_for(
                lambda: any(l is not None and pred(l) for l in self.lines) or None in self.lines,
                timeout_s) and any(l is not None and pred(l) for l in self.lines)

    def count(self, text):
        with self.cv:
            return sum(1 for l in self.lines if l is not None and text in l)

    def stop(self, timeout_s=30):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            code = self.p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.p.kill()
            code = None
        self.t.join(5)
        return code

    def text(self):
        return [l for l in self.lines if l is not None]


def written_paths(psd):
    return [m.group(1) for l in psd.text() for m in [re.search(r"checkpoint written: (\S+)", l)]
            if m]


def ckpt_listing(folder):
    return sorted((n, os.path.getsize(os.path.join(folder, n)), os.stat(os.path.join(folder, n)).st_mtime_ns)
                  for n in os.listdir(folder))


# ---- case 1a: torn copies with higher versions, keep: 2 ----
ckpt = os.path.join(env.tmp, "ckpt")
text = job_yaml(env, "prune", mode="async", workers=1, epochs=3,
                extra=f"checkpoint: {{dir: {ckpt}, every_seconds: 0.1, keep: 2}}\n")
job = write(env, "prune.yaml", text)
psd = Psd(job)
env.check(psd.wait_for(lambda l: "checkpoint written" in l, 30), "psd writes a checkpoint")
env.check(psd.stop() == 0, "psd exits 0 on SIGTERM")
good = written_paths(psd)[-1]
head = open(good, "rb").read()[:200]
torn = [os.path.join(ckpt, f"prune-shard0-{v}.ckpt")
        for v in ("99999999999999999998", "99999999999999999999")]
for path in torn:
    open(path, "wb").write(head)

psd = Psd(job)
env.check(psd.wait_for(lambda l: "listening on" in l, 30), "psd starts beside the torn copies")
code, out, err = run([env.prog("psworker"), "--config", job, "--rank", "0"], 180)
env.check(code == 0, f"the worker trains to the end (exit {code}: {err.strip()[-300:]})")
before = psd.count("checkpoint written")
env.check(psd.wait_for(lambda l: psd.count("checkpoint written") >= before + 2, 30),
          "psd goes on writing checkpoints")
env.check(psd.stop() == 0, "psd exits 0 on SIGTERM")
lines = psd.text()
print("\n".join(lines[:4]))
warnings = [l for l in lines if "skipped" in l]
env.check(len(warnings) == 2 and all(re.search(r"9{19}[89]\.ckpt skipped: 200 bytes, expected \d+ "
                                               r"\(truncated or torn\)", l) for l in warnings),
          "each torn copy is skipped with one warning line")
env.check(any(f"checkpoint loaded: {good}" in l for l in lines), "the good checkpoint is loaded")
written = written_paths(psd)
last = written[-1]
env.check(os.path.exists(last) and check_file(last) is None,
          f"the last checkpoint psd wrote is on disk and valid ({os.path.basename(last)})")
env.check(version_of(last) > version_of(good), "training moved the version on")
names = sorted(n for n in os.listdir(ckpt) if n.endswith(".ckpt"))
valid = [n for n in names if check_file(os.path.join(ckpt, n)) is None]
env.check(len(valid) == 2 and os.path.basename(last) in valid,
          f"the newest two valid checkpoints are kept ({valid})")
env.check(all(os.path.exists(p) for p in torn), "files psd never verified are not deleted")

psd = Psd(job)
env.check(psd.wait_for(lambda l: "checkpoint loaded:" in l, 30), "a restart loads a checkpoint")
env.check(psd.stop() == 0, "psd exits 0 on SIGTERM")
env.check(any(f"checkpoint loaded: {last}" in l for l in psd.text()),
          "a restart loads the checkpoint written last, not the seed")

# ---- case 1b: the same job edited from features 30 to 20, same name and folder ----
for path in torn:
    os.unlink(path)
listing = ckpt_listing(ckpt)
job20 = write(env, "prune20.yaml", text.replace("features: 30", "features: 20"))
code, out, err = run([env.prog("psd"), "--config", job20], 30)
want = (f"psd: {ckpt}/: holds checkpoints of job \"prune\" with 31 parameters, this job has 21: "
        "move them away or set checkpoint.dir")
print(err.strip())
env.check(code == 2, f"psd refuses the folder with exit 2 (exit {code})")
env.check(err.strip() == want, "in one line naming the folder and what differs")
env.check(ckpt_listing(ckpt) == listing, "nothing in the folder is deleted or changed")

# ---- case 8: a checkpoint folder that cannot be written ----
afile = write(env, "somefile", "not a folder\n")
for bad in (os.path.join(afile, "ckpt"), "/proc/ckpt"):
    j = write(env, "bad.yaml", job_yaml(env, "prunebad", mode="async", workers=1,
                                        extra=f"checkpoint: {{dir: {bad}, keep: 2}}\n"))
    code, out, err = run([env.prog("psd"), "--config", j], 30)
    lines = err.strip().splitlines()
    print(err.strip())
    env.check(code == 2 and len(lines) == 1 and "checkpoint.dir" in lines[0] and bad in lines[0]
              and re.search(r": (Not a directory|No such file or directory|Permission denied|"
                            r"Read-only file system)$", lines[0]),
              f"{bad}: refused at start in one line naming checkpoint.dir and the OS error")

# ---- case 8: a write that fails while psd runs is psctl checkpoint's answer ----
ckpt2 = os.path.join(env.tmp, "ckpt2")
text2 = job_yaml(env, "prunefail", mode="async", workers=1,
                 extra=f"checkpoint: {{dir: {ckpt2}, every_seconds: 3600, keep: 2}}\n")
job2 = write(env, "fail.yaml", text2)
# psctl reads the job for the name and endpoints; its copy names a folder
# that stays a folder, so only psd meets the broken one
job2ctl = write(env, "fail-ctl.yaml", text2.replace(ckpt2, os.path.join(env.tmp, "ctl-ckpt")))
psd = Psd(job2)
env.check(psd.wait_for(lambda l: "listening on" in l, 30), "psd starts")
code, out, err = run([env.prog("psctl"), "--config", job2ctl, "checkpoint"], 60)
env.check(code == 0 and "checkpoint written" in out + err, "psctl checkpoint writes one")
os.rename(ckpt2, ckpt2 + ".gone")
write(env, "ckpt2", "a file where the folder was\n")
code, out, err = run([env.prog("psctl"), "--config", job2ctl, "checkpoint"], 60)
print(err.strip())
env.check(code not in (0, None) and "no answer" not in err
          and re.search(r"cannot create \S+ckpt2/\.prunefail-shard0-\d{20}\.ckpt\.tmp: "
                        r"Not a directory \(PS_EIO\)", err),
          "psctl checkpoint gets the write's error, not a timeout")
env.check(psd.stop() is not None, "psd stops on SIGTERM")

no_leftovers(env, job)
no_leftovers(env, job2)
env.finish()
