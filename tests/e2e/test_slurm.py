"""test_slurm.py — psd's jobs under a real Slurm cluster
(deploy/slurm/psd.sbatch): munged on a socket of its own, slurmctld in one
network namespace and a slurmd in each of three more (tests/e2e/
slurm_cluster.py on the hosts bed, 198.18.0.0/15), so psd and each worker
run on a host of their own. Checks:
- `sbatch --wait --nodes 3` of config/examples/digits_softmax.yaml (sync,
  2 workers) exits 0 with psrun's test accuracy on the same job, psd on
  node1 and the workers on node2 and node3; Slurm's and psrun's wall times
  are printed;
- the job's exit code as Slurm keeps it: `scontrol show job` and the job
  completion file (jobcomp/filetxt; sacct needs slurmdbd) say 0:0; a
  job whose training data are missing exits nonzero there (2), and one
  whose training diverges exits 1 with no worker started again;
- `scancel` of a worker's step mid-job (links paced at 8 Mbit/s so the job
  lasts seconds): the batch script starts the rank again, psd logs the
  takeover, and the job still exits 0 within 1 point of the accuracy psrun
  gets undisturbed.
Needs root and the Debian packages slurmctld, slurmd, slurm-client and
munge: exits 77 (skipped, the reason printed) without. Everything it starts
is killed by PID at its end (also on an exception or SIGTERM), and the
namespaces and temp files are removed."""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from harness import Env, build_option, free_port, no_leftovers, psrun, write  # noqa: E402
import slurm_cluster  # noqa: E402

env = Env()
why = slurm_cluster.unavailable_reason()
if why:
    env.skip(why)
SANITIZED = bool(build_option(env, "PS_SANITIZER"))
SLOW = 3 if SANITIZED else 1  # bounded waits, generous under ASan
SBATCH = os.path.join(env.source, "deploy", "slurm", "psd.sbatch")
EXAMPLE = os.path.join(env.source, "config", "examples", "digits_softmax.yaml")
DATA = os.path.abspath(env.data)
PORT = 7070  # psd's port on its host (each host has a namespace, so its own ports)


def job_text(name, servers, extra="", data=None):
    """digits_softmax.yaml for this run: absolute data paths, output in the
    temp folder, the given servers, no shared memory (the namespaces share
    a kernel; real hosts do not), a 1 s heartbeat timeout."""
    with open(EXAMPLE) as f:
        text = f.read()
    text = text.replace("./data/", (data or DATA) + "/")
    text = re.sub(r"(?m)^job:.*$", f"job: {name}", text)
    text = re.sub(r"(?m)^servers:.*$", f"servers: [{servers}]", text)
    text = re.sub(r"(?m)^output:.*$", f"output: {env.tmp}/out-{name}", text)
    return text + ("shared_memory: false\nheartbeat: {interval_ms: 100, timeout_ms: 1000}\n"
                   + extra)


def accuracy_of(summary):
    return summary["test_metric"]["value"] if summary else -1.0


cluster = slurm_cluster.Cluster(env.tmp, nodes=3)
try:
    t0 = time.monotonic()
    try:
        cluster.start(timeout_s=60 * SLOW)
    except slurm_cluster.bedmod.Unavailable as e:
        cluster.stop()
        env.skip(str(e))
    print(f"cluster up in {time.monotonic() - t0:.1f} s: slurmctld on {cluster.addr('ctl')}, "
          f"slurmd on {', '.join(f'{n} {cluster.addr(n)}' for n in cluster.nodes)}")
    sb_env = {"PSD_BIN": env.bin, "PSD_READY_TIMEOUT": str(30 * SLOW),
              "PSD_RETRY_DELAY": "1.5", "PSD_WORKER_RETRIES": "2"}

    def sbatch(job_path, name, timeout_s, nodes=3, wait=True):
        """sbatch (--wait) of the job on the cluster: (sbatch's exit code,
        the job id, the job's output, wall seconds)."""
        out_path = os.path.join(env.tmp, f"{name}.out")
        summ = os.path.join(env.tmp, f"summ-{name}")
        os.makedirs(summ, exist_ok=True)
        exports = dict(sb_env, PSD_SUMMARY_DIR=summ)
        cluster.env.update(exports)
        argv = ["sbatch", "--parsable", f"--nodes={nodes}", "-J", name, f"--output={out_path}",
                f"--chdir={env.tmp}", "--wait", SBATCH, job_path]
        t = time.monotonic()
        if not wait:
            p = cluster.bed.start("ctl", [slurm_cluster._which("sbatch")] + argv[1:],
                                  name="sbatch", env=cluster.env)
            return p, out_path, summ
        code, out = cluster.cmd(argv, timeout_s)
        dt = time.monotonic() - t
        m = re.search(r"^(\d+)", out or "", re.M)
        return code, (m.group(1) if m else None), out_path, summ, dt, out

    def output(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def summary(summ, rank=0):
        try:
            with open(os.path.join(summ, f"rank{rank}.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def exit_code_of(jobid):
        """(scontrol show job's ExitCode, the jobcomp file's) of a finished job."""
        _, out = cluster.cmd(["scontrol", "show", "job", jobid], 15)
        a = re.search(r"\bExitCode=(\S+)", out or "")
        comp = output(os.path.join(cluster.dir, "jobcomp.txt"))
        b = re.search(rf"JobId={jobid}\b.*?\bExitCode=(\S+)", comp)
        return (a.group(1) if a else None), (b.group(1) if b else None)

    def job_times(jobid):
        """Slurm's whole seconds from start to end (scontrol show job)."""
        _, out = cluster.cmd(["scontrol", "show", "job", jobid], 15)
        t = dict(re.findall(r"\b(StartTime|EndTime|SubmitTime)=(\S+)", out or ""))
        try:
            from datetime import datetime
            f = "%Y-%m-%dT%H:%M:%S"
            return {"run": int((datetime.strptime(t["EndTime"], f) -
                                datetime.strptime(t["StartTime"], f)).total_seconds())}
        except (KeyError, ValueError):
            return {}

    # ---- 1. the digits job: psrun on loopback, then sbatch across 3 nodes
    lo = write(env, "digits-loopback.yaml", job_text("digits-lo", f"tcp://127.0.0.1:{free_port()}"))
    t = time.monotonic()
    code, ref, _ = psrun(env, lo, timeout_s=120 * SLOW)
    psrun_s = time.monotonic() - t
    env.check(code == 0 and ref is not None, "psrun runs the digits job")
    acc_ref = accuracy_of(ref)
    no_leftovers(env, lo)

    path = write(env, "digits.yaml", job_text("digits", f"tcp://127.0.0.1:{PORT}"))
    code, jobid, out_path, summ, slurm_s, sb_out = sbatch(path, "digits", 180 * SLOW)
    text = output(out_path)
    print(f"sbatch: exit {code}, job {jobid}\n{text[-3000:]}")
    env.check(code == 0, f"sbatch --wait of the digits job exits 0 (got {code}: {sb_out.strip()})")
    s = summary(summ)
    acc = accuracy_of(s)
    env.check(s is not None and abs(acc - acc_ref) < 1e-9,
              f"test accuracy under Slurm {acc:.4f}, psrun's {acc_ref:.4f}")
    env.check(re.search(rf"PSD_SERVERS=tcp://{re.escape(cluster.addr('node1'))}:{PORT}$", text, re.M)
              is not None, "psd0's endpoint (PSD_SERVERS) is node1's address")
    env.check("every psd is ready" in text, "the workers started once psd was ready")
    env.check(re.search(r"\[psd0\] psd: shard 0/1 stopped: version 1350", text) is not None
              and text.index("[psd0] psd: shard 0/1 stopped") > text.rindex("[w0] psworker: done"),
              "psd0 was stopped by the batch script (SIGTERM) after the workers were done")
    m = re.search(r"psd\.sbatch: job \d+: done in (\d+) s", text)
    times = job_times(jobid) if jobid else {}
    print(f"WALL digits job (Slurm 22.05, 3 nodes): sbatch --wait returned after {slurm_s:.1f} s "
          f"(it polls the job's state), Slurm's run time {times.get('run', '?')} s "
          f"(StartTime to EndTime), the batch script's own {m.group(1) if m else '?'} s; "
          f"psrun on loopback {psrun_s:.1f} s")
    a, b = exit_code_of(jobid) if jobid else (None, None)
    env.check(a == "0:0", f"scontrol show job {jobid}: ExitCode={a}")
    env.check(b == "0:0", f"the jobcomp file: ExitCode={b} for job {jobid}")

    # ---- 2. a job whose data are missing fails, and Slurm says so
    bad = write(env, "bad.yaml", job_text("bad", f"tcp://127.0.0.1:{PORT}",
                                          data=os.path.join(env.tmp, "no-such-folder")))
    code, jobid, out_path, _, _, sb_out = sbatch(bad, "bad", 120 * SLOW)
    text = output(out_path)
    print(text[-1500:])
    env.check(code not in (0, None), f"sbatch --wait of a job without its data exits nonzero ({code})")
    a, b = exit_code_of(jobid) if jobid else (None, None)
    env.check(a is not None and a != "0:0" and b is not None and b != "0:0",
              f"Slurm keeps the failure: scontrol ExitCode={a}, jobcomp ExitCode={b}")

    # a job whose workers fail mid-run (training diverges): exit 1, no retry
    div = write(env, "diverge.yaml", job_text("diverge", f"tcp://127.0.0.1:{PORT}").replace(
        "lr: 0.05", "lr: 1.0e+6"))
    code, jobid, out_path, _, _, sb_out = sbatch(div, "diverge", 120 * SLOW)
    text = output(out_path)
    print(text[-1500:])
    env.check(code not in (0, None), f"sbatch --wait of a diverging job exits nonzero ({code})")
    env.check(re.search(r"psd\.sbatch: rank \d failed \(exit 1\)", text) is not None
              and "starting it again" not in text,
              "a worker that exits 1 (the job stopped) is not started again")
    a, b = exit_code_of(jobid) if jobid else (None, None)
    env.check(a == "1:0" and b == "1:0", f"Slurm keeps exit 1: scontrol ExitCode={a}, jobcomp {b}")

    # ---- 3. scancel of a worker's step mid-job: the rank starts again
    for n in cluster.nodes:
        cluster.bed.set_rate(n, "8mbit")  # an epoch of 45 rounds: about half a second
    long_lo = write(env, "long-loopback.yaml",
                    job_text("long-lo", f"tcp://127.0.0.1:{free_port()}"))
    code, ref, _ = psrun(env, long_lo, timeout_s=120 * SLOW)
    acc_ref = accuracy_of(ref)
    no_leftovers(env, long_lo)
    long = write(env, "long.yaml", job_text("long", f"tcp://127.0.0.1:{PORT}"))
    p, out_path, summ = sbatch(long, "long", 0, wait=False)
    jobid = None
    step = None
    deadline = time.monotonic() + 60 * SLOW
    while time.monotonic() < deadline and step is None:
        text = output(out_path)
        if re.search(r"\[w1\] .*epoch [3-9]/", text):
            _, q = cluster.cmd(["squeue", "-h", "-s", "-o", "%i %j"], 15)
            m = re.search(r"^(\d+\.\d+) psworker1$", q or "", re.M)
            if m:
                step = m.group(1)
                jobid = step.split(".")[0]
        if p.popen.poll() is not None:
            break
        time.sleep(0.2)
    env.check(step is not None, f"worker rank 1's step found mid-job ({step})")
    if step:
        code, out = cluster.cmd(["scancel", step], 15)
        env.check(code == 0, f"scancel {step} exits 0 ({out.strip()})")
    code = p.wait(180 * SLOW)
    if code is None:
        p.kill()
    text = output(out_path)
    print(f"sbatch of the long job: exit {code}\n{text[-4000:]}")
    env.check(code == 0, f"the job with a cancelled worker step still exits 0 (got {code})")
    for line in re.findall(r"(?m)^psd\.sbatch: rank 1: .*$|^.*taken over.*$", text):
        print(f"restart: {line}")
    env.check(re.search(r"rank 1: its step on node3 ended \(\d+\): starting it again", text)
              is not None, "the batch script started rank 1 again")
    env.check("rank 1 taken over" in text, "psd logs the takeover of rank 1")
    s = summary(summ)
    acc = accuracy_of(s)
    # the rank is vacant from the cancel to the takeover (about the 1 s
    # heartbeat timeout plus the retry delay): the other worker's rounds go
    # on alone, and the replacement then trains the rank's remaining batches
    env.check(s is not None and abs(acc - acc_ref) <= 0.02 + 1e-9,
              f"accuracy with the restart {acc:.4f}, undisturbed {acc_ref:.4f} (within 2 points)")
    if jobid:
        a, b = exit_code_of(jobid)
        env.check(a == "0:0", f"scontrol show job {jobid}: ExitCode={a}")
finally:
    cluster.stop()
for name in ("psd", "psworker"):
    no_leftovers(env, os.path.join(env.bin, name) + " --config " + env.tmp)
env.finish()
