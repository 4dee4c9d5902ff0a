"""test_outputs.py — what the programs do with the files and the stdout they
are given (docs/operations.md#what-you-can-rely-on-when-things-go-wrong).

Output paths: a FIFO, a device node, a folder or a missing folder given as
psrun's --summary-json or --curves (or found where the SVG beside the summary
goes), as psworker's, as psrun predict's --output, psworker predict's --out,
psgen's outputs or a file of the job's model folder is refused in one line
naming it and what it is, with exit 2, before any job starts (no "psrun: job"
line, no process left, the FIFO or node left as it was). A summary path that
is a symbolic link gets its target replaced, and stays a link.

Lost stdout: psrun, psctl status and every program's --version with stdout
on /dev/full exit 1 with one line saying so; psctl top with stdout on
/dev/full or closed stops and exits 1 (bounded by a timeout, not timed); a
psrun whose stdout is a pipe with no reader ends by SIGPIPE, without a word.

No test here ever writes over /dev/full: the device nodes written at are
made in the scratch folder (the tests run as root). Every process started is
killed by PID at the end."""
import json
import os
import re
import signal
import stat
import subprocess

from harness import Env, free_port, no_leftovers, psd_listening, run, write

env = Env()


def line_job(name, extra=""):
    """config/examples/line.yaml (a second of training) on a free port."""
    with open(os.path.join(env.source, "config", "examples", "line.yaml")) as f:
        text = f.read()
    text = re.sub(r"tcp://127\.0\.0\.1:\d+", f"tcp://127.0.0.1:{free_port()}", text)
    text = text.replace("data/line.csv", os.path.join(env.data, "line.csv"))
    text = re.sub(r"(?m)^job: .*$", f"job: {name}", text)
    return write(env, f"{name}.yaml", text + extra)


def kind(path):
    """'fifo', 'chr', 'dir', 'link', 'file' or 'none' for what path itself is."""
    try:
        m = os.lstat(path).st_mode
    except FileNotFoundError:
        return "none"
    for name, test in (("link", stat.S_ISLNK), ("fifo", stat.S_ISFIFO), ("chr", stat.S_ISCHR),
                       ("dir", stat.S_ISDIR), ("file", stat.S_ISREG)):
        if test(m):
            return name
    return "other"


def refused_early(what, cmd, want, path, was, job=None):
    """cmd must exit 2 with a line containing want, start no job and leave
    path as it was (of kind was)."""
    code, out, err = run(cmd, 60)
    lines = [ln for ln in err.splitlines() if want in ln]
    env.check(code == 2, f"{what}: exit 2 (got {code}) {err.strip()[-300:]}")
    env.check(len(lines) == 1, f"{what}: one line says {want!r} ({lines})")
    env.check("psrun: job " not in err and "[psd0]" not in err and out == "",
              f"{what}: refused before the job started")
    env.check(kind(path) == was, f"{what}: {os.path.basename(path)} is still a {was} "
                                 f"({kind(path)})")
    if job is not None:
        no_leftovers(env, job)


job = line_job("outputs")
fifo = os.path.join(env.tmp, "summary.json")
os.mkfifo(fifo)

# ---- output paths, psrun --------------------------------------------------
refused_early("psrun --summary-json FIFO",
              [env.prog("psrun"), "--summary-json", fifo, job],
              f"psrun: --summary-json: {fifo} is a FIFO, not a regular file: "
              "refusing to write over it", fifo, "fifo", job)

node = os.path.join(env.tmp, "full")
try:
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full's numbers
except PermissionError:
    node = None
    print("no CAP_MKNOD here: the character device case is left to test_report_file")
if node is not None:
    refused_early("psrun --curves a character device",
                  [env.prog("psrun"), "--curves", node, job],
                  f"psrun: --curves: {node} is a character device, not a regular file",
                  node, "chr", job)

beside = os.path.join(env.tmp, "run.svg")
os.mkdir(beside)
refused_early("psrun: the SVG beside --summary-json is a folder",
              [env.prog("psrun"), "--summary-json", os.path.join(env.tmp, "run.json"), job],
              f"psrun: the curves beside --summary-json: {beside} is a folder", beside, "dir",
              job)

missing = os.path.join(env.tmp, "no-such-folder", "s.json")
refused_early("psrun --summary-json in a missing folder",
              [env.prog("psrun"), "--summary-json", missing, job],
              f"psrun: --summary-json: {missing}: the folder "
              f"{os.path.dirname(missing)} does not exist", missing, "none", job)

# a file of the model folder that is a FIFO: psworker --describe refuses it
model_dir = os.path.join(env.tmp, "model")
os.mkdir(model_dir)
manifest = os.path.join(model_dir, "manifest.json")
os.mkfifo(manifest)
out_job = line_job("outputs-model", f"output: {model_dir}\n")
refused_early("psrun: the model folder's manifest.json is a FIFO",
              [env.prog("psrun"), out_job],
              f"psrun: output: {manifest} is a FIFO, not a regular file", manifest, "fifo",
              out_job)

# ---- output paths, the other programs ------------------------------------
refused_early("psworker --summary-json FIFO",
              [env.prog("psworker"), "--config", job, "--rank", "0", "--summary-json", fifo],
              f"psworker: --summary-json: {fifo} is a FIFO", fifo, "fifo", job)
refused_early("psrun predict --output FIFO",
              [env.prog("psrun"), "predict", job, "--data", os.path.join(env.data, "line.csv"),
               "--output", fifo],
              f"psrun: --output: {fifo} is a FIFO", fifo, "fifo")
prefix = os.path.join(env.tmp, "part")
os.mkfifo(prefix + ".csv")
refused_early("psworker predict --out, PREFIX.csv a FIFO",
              [env.prog("psworker"), "predict", "--config", job, "--data",
               os.path.join(env.data, "line.csv"), "--out", prefix],
              f"psworker: --out: {prefix}.csv is a FIFO", prefix + ".csv", "fifo")
clicks = os.path.join(env.tmp, "clicks")
os.mkfifo(clicks + ".train.tsv")
refused_early("psgen clicks, PREFIX.train.tsv a FIFO",
              [env.prog("psgen"), "clicks", "--rows", "100", "--out", clicks],
              f"psgen: {clicks}.train.tsv is a FIFO", clicks + ".train.tsv", "fifo")
env.check(kind(clicks + ".test.tsv") == "none", "psgen: nothing else was written")

# ---- a symbolic link: its target is replaced, the link stays ---------------
results = os.path.join(env.tmp, "results")
os.mkdir(results)
real = os.path.join(results, "run1.json")
write(env, "results/run1.json", "old\n")
link = os.path.join(env.tmp, "latest.json")
os.symlink("results/run1.json", link)
code, out, err = run([env.prog("psrun"), "--summary-json", link, job], 120)
env.check(code == 0, f"psrun --summary-json LINK: exit 0 (got {code}) {err.strip()[-300:]}")
env.check(kind(link) == "link" and os.readlink(link) == "results/run1.json",
          "psrun --summary-json LINK: the link is still a link to results/run1.json")
try:
    with open(real) as f:
        env.check(json.load(f).get("job") == "outputs",
                  "psrun --summary-json LINK: the link's target holds the summary")
except (OSError, ValueError) as e:
    env.check(False, f"psrun --summary-json LINK: the target reads as JSON ({e})")
env.check(sorted(os.listdir(results)) == ["run1.json"],
          f"psrun --summary-json LINK: no temporary left beside the target "
          f"({os.listdir(results)})")
env.check(kind(os.path.join(env.tmp, "latest.svg")) == "file",
          "psrun --summary-json LINK: the curves are a file beside the link")
no_leftovers(env, job)

# ---- lost stdout --------------------------------------------------------
def to_full(cmd, timeout_s):
    """Runs cmd with stdout on /dev/full: (exit code or None, stderr)."""
    with open("/dev/full", "w") as full:
        p = subprocess.Popen(cmd, stdout=full, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        _, err = p.communicate(timeout=timeout_s)
        return p.returncode, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        return None, err


FULL = "cannot write to standard output: No space left on device"
for prog in ("psd", "psworker", "psrun", "psctl", "psgen", "psbench"):
    code, err = to_full([env.prog(prog), "--version"], 30)
    env.check(code == 1 and err == f"{prog}: {FULL}\n",
              f"{prog} --version > /dev/full: exit 1 and one line (exit {code}, {err!r})")

code, err = to_full([env.prog("psrun"), job], 120)
env.check(code == 1 and f"psrun: {FULL}" in err.splitlines(),
          f"psrun > /dev/full: the summary line is lost: exit 1 and one line (exit {code}) "
          f"{err.strip()[-300:]}")
no_leftovers(env, job)

# a pipe whose reader is gone: quiet, as any filter (psrun ignores SIGPIPE
# for its children's sockets, and still ends by it)
r, w = os.pipe()
os.close(r)
p = subprocess.Popen([env.prog("psrun"), job], stdout=w, stderr=subprocess.PIPE, text=True,
                     start_new_session=True)
os.close(w)
try:
    _, err = p.communicate(timeout=120)
    env.check(p.returncode == -signal.SIGPIPE and "standard output" not in err,
              f"psrun | (reader gone): ends by SIGPIPE without a word (exit {p.returncode})")
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    env.check(False, "psrun | (reader gone): ends within 120 s")
no_leftovers(env, job)

# psctl against a live psd (no worker: it waits, and answers status)
psd, lines, _ = psd_listening(env, job)
try:
    psctl = [env.prog("psctl"), "--config", job, "--timeout-ms", "3000"]
    code, out, err = run(psctl + ["status"], 30)
    env.check(code == 0 and out != "", f"psctl status to a pipe: exit 0 (got {code}) {err}")
    code, err = to_full(psctl + ["status"], 30)
    env.check(code == 1 and err == f"psctl: {FULL}\n",
              f"psctl status > /dev/full: exit 1 and one line (exit {code}, {err!r})")
    code, err = to_full(psctl + ["--interval", "200", "top"], 30)
    env.check(code == 1 and err == f"psctl: {FULL}\n",
              f"psctl top > /dev/full: stops, exit 1 and one line (exit {code}, {err!r})")
    code, _, err = run(["sh", "-c", 'exec "$0" "$@" >&-'] + psctl + ["--interval", "200", "top"],
                       30)
    env.check(code == 1 and err == "psctl: cannot write to standard output: Bad file descriptor\n",
              f"psctl top with stdout closed: stops, exit 1 and one line (exit {code}, {err!r})")
    code, out, err = run(["sh", "-c", '"$0" "$@" status | head -1'] + psctl, 30)
    env.check(code == 0 and len(out.splitlines()) == 1 and err == "",
              f"psctl status | head -1: one line, nothing on stderr ({err!r})")
finally:
    psd.kill()
    psd.wait()
no_leftovers(env, job)
env.finish()
