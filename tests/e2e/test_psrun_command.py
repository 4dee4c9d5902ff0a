"""test_psrun_command.py — psrun with a job's worker.command: N copies of the
program start instead of psworker, in the job's folder, with PSD_JOB (the
job file's absolute path) and PSD_RANK in their environment, their lines
prefixed [wI]; a worker that fails fails the job as psworker's would."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness as h

WORKER = r'''
import os, sys
print(f"rank {os.environ['PSD_RANK']} job {os.environ['PSD_JOB']} cwd {os.getcwd()}", flush=True)
sys.exit(int(os.environ.get("EXIT_" + os.environ["PSD_RANK"], "0")))
'''


def main():
    env = h.Env()
    folder = os.path.join(env.tmp, "jobdir")
    os.makedirs(folder)
    with open(os.path.join(folder, "tiny_worker.py"), "w") as f:
        f.write(WORKER)
    text = h.job_yaml(env, "cmd-job", workers=2, epochs=1)
    text += "worker: {command: [/usr/bin/python3, tiny_worker.py]}\n"
    job = os.path.join(folder, "job.yaml")
    with open(job, "w") as f:
        f.write(text)

    code, out, err = h.run([env.prog("psrun"), job], 60)
    print(out + "\n".join(err.splitlines()[-10:]))
    env.check(code == 0, "psrun runs the job's worker command: exit 0")
    env.check("psrun: cmd-job done in" in out, "psrun says the job is done")
    for r in (0, 1):
        line = f"[w{r}] rank {r} job {job} cwd {folder}"
        env.check(line in err, f"w{r} saw PSD_RANK {r}, the absolute PSD_JOB and the job's folder")
    h.no_leftovers(env, job)

    # a relative job path still gives an absolute PSD_JOB
    code, _, err = h.run([env.prog("psrun"), "job.yaml"], 60, cwd=folder)
    env.check(code == 0 and f"job {job} " in err, "a relative job path gives an absolute PSD_JOB")

    # a worker that fails fails the job, named as a psworker would be
    os.environ["EXIT_1"] = "3"
    try:
        with open(job, "w") as f:
            f.write(text.replace("on_worker_loss", "x") + "on_worker_loss: abort\n")
        code, _, err = h.psrun(env, job, timeout_s=60, summary=False)
    finally:
        del os.environ["EXIT_1"]
    env.check(code == 1 and "w1 exited with status 3" in err,
              "a worker command that exits 3 fails the job, w1 named")
    h.no_leftovers(env, job)

    # psworker is still the default, and still gets PSD_RANK (harmlessly)
    plain = h.write(env, "plain.yaml", h.job_yaml(env, "plain", workers=2, epochs=2))
    code, summary, _ = h.psrun(env, plain, timeout_s=120)
    env.check(code == 0 and summary is not None, "a job without worker.command runs psworker")
    h.stop_procs(env)
    env.finish()


if __name__ == "__main__":
    main()
