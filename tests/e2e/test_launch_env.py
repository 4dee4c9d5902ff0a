"""test_launch_env.py — psd and psworker take their shard, rank and the
servers' endpoints from the environment an engine gives them (Slurm,
Kubernetes, Kubeflow's TF_CONFIG), with no --shard or --rank: two servers and
two workers train breast_cancer to psrun's accuracy once with PSD_SHARD and
PSD_RANK, once with SLURM_PROCID, once with TF_CONFIG (whose cluster.ps
replaces the file's servers) and once with a servers pattern overridden by
PSD_SERVERS and --servers; a rank or shard the job does not have is refused
in one line naming the variable (docs/deployment.md#ranks-shards-and-endpoints-from-the-environment)."""
import json
import os
import subprocess

from harness import Env, Proc, free_port, job_yaml, psrun, run, stop_procs, wait_for, write

env = Env()
LAUNCH_VARS = ("PSD_RANK", "PSD_SHARD", "SLURM_PROCID", "JOB_COMPLETION_INDEX", "TF_CONFIG",
               "PSD_SERVERS", "PSD_NAMESPACE", "POD_NAMESPACE", "PSD_SHARD_FROM_HOSTNAME")
base_env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
EXTRA = "deterministic: true\n"
EPOCHS = 5


class EnvProc(Proc):
    """Proc with an environment of its own (Proc's own first argument is
    named env, so it cannot take Popen's)."""

    def __init__(self, e, name, cmd, child_env):  # pylint: disable=super-init-not-called
        self.name = name
        self.log = os.path.join(e.tmp, name + ".log")
        self.f = open(self.log, "w")
        self.p = subprocess.Popen(cmd, stdout=self.f, stderr=subprocess.STDOUT, env=child_env)
        e.procs.append(self)


def accuracy_of(summary_path):
    try:
        with open(summary_path) as f:
            return json.load(f)["test_metric"]["value"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train(tag, job, server_env, worker_env, worker_flags=()):
    """psd x2 and psworker x2 on job, each with only its environment (no
    --shard, no --rank); the workers' test accuracies, or None."""
    procs = []
    for i in range(2):
        e = dict(base_env, **server_env(i))
        procs.append(EnvProc(env, f"{tag}-psd{i}", [env.prog("psd"), "--config", job,
                                                     "--exit-when-done"], e))
    up = wait_for(lambda: all("listening on" in p.text() or p.p.poll() is not None
                              for p in procs), 30, f"{tag}: both psd listening")
    env.check(up and all(p.p.poll() is None for p in procs), f"{tag}: both psd listen")
    workers = []
    for r in range(2):
        e = dict(base_env, **worker_env(r))
        summary = os.path.join(env.tmp, f"{tag}-w{r}.json")
        workers.append((EnvProc(env, f"{tag}-w{r}", [env.prog("psworker"), "--config", job,
                                                      "--summary-json", summary, *worker_flags],
                                e), summary))
    codes = [w.wait(120) for w, _ in workers]
    for p in procs:
        p.wait(30)
    ok = codes == [0, 0]
    env.check(ok, f"{tag}: both workers finish (exit {codes})")
    if not ok:
        for p in procs + [w for w, _ in workers]:
            p.show()
    logs = [p.text() for p in procs]
    # each server served the shard its environment named, each worker its rank
    env.check(all(f"shard {i}/2" in logs[i] for i in range(2)),
              f"{tag}: psd i serves shard i")
    texts = [w.text() for w, _ in workers]
    env.check(all(f"done: rank {r}," in texts[r] for r in range(2)),
              f"{tag}: worker r trains as rank r")
    return [accuracy_of(s) for _, s in workers]


def two_server_job(name, servers_text=None):
    text = job_yaml(env, name, shards=2, epochs=EPOCHS, extra=EXTRA)
    if servers_text is not None:
        line = [l for l in text.splitlines() if l.startswith("servers:")][0]
        text = text.replace(line, servers_text)
    return text


# the reference: psrun, ranks and shards from its flags
ref_job = write(env, "ref.yaml", two_server_job("ref"))
code, data, _ = psrun(env, ref_job, timeout_s=120)
env.check(code == 0 and data is not None, "psrun trains the reference job")
ref = data["test_metric"]["value"] if data else None
print(f"psrun accuracy {ref}")


def same_as_psrun(tag, accs):
    env.check(ref is not None and all(a is not None and abs(a - ref) < 1e-9 for a in accs),
              f"{tag}: accuracy {accs} is psrun's {ref}")


# 1. PSD_SHARD and PSD_RANK
job = write(env, "psd_vars.yaml", two_server_job("psd_vars"))
accs = train("psd_vars", job, lambda i: {"PSD_SHARD": str(i)}, lambda r: {"PSD_RANK": str(r)})
same_as_psrun("PSD_SHARD/PSD_RANK", accs)

# 2. Slurm: psd and psworker as separate steps, SLURM_PROCID is shard and rank
job = write(env, "slurm.yaml", two_server_job("slurm"))
accs = train("slurm", job, lambda i: {"SLURM_PROCID": str(i)},
             lambda r: {"SLURM_PROCID": str(r)})
same_as_psrun("SLURM_PROCID", accs)

# 3. Kubeflow TFJob: TF_CONFIG's cluster.ps replaces the file's servers
ps_ports = [free_port(), free_port()]
cluster = {"ps": [f"127.0.0.1:{p}" for p in ps_ports], "worker": ["w0:1", "w1:1"]}
job = write(env, "tf.yaml", two_server_job("tf"))  # its servers' ports stay unused


def tf(kind, i):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": i}})}


accs = train("tf_config", job, lambda i: tf("ps", i), lambda r: tf("worker", r))
same_as_psrun("TF_CONFIG", accs)
env.check(all(f"127.0.0.1:{ps_ports[i]}" in open(os.path.join(env.tmp, f"tf_config-psd{i}.log"))
              .read() for i in range(2)), "TF_CONFIG: psd listens on cluster.ps's endpoints")

# 4. a servers pattern (Kubernetes names) overridden by PSD_SERVERS and --servers
real = ",".join(f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
pattern = ('servers: {pattern: "tcp://psd-{shard}.psd.{namespace}.svc.cluster.local:7070", '
           'count: 2}')
job = write(env, "pattern.yaml", two_server_job("pattern", pattern))
code, _, err = run([env.prog("psd"), "--config", job], 30, env=dict(base_env, PSD_SHARD="0"))
env.check(code == 2 and "servers.pattern: {namespace} needs PSD_NAMESPACE or POD_NAMESPACE"
          in err and len(err.strip().splitlines()) == 1,
          f"pattern: no namespace is refused in one line (exit {code}: {err.strip()})")
accs = train("pattern", job,
             lambda i: {"PSD_SHARD": str(i), "POD_NAMESPACE": "ml", "PSD_SERVERS": real},
             lambda r: {"PSD_RANK": str(r), "POD_NAMESPACE": "ml",
                        "PSD_SERVERS": "tcp://127.0.0.1:1"},  # --servers beats it
             worker_flags=("--servers", real))
same_as_psrun("pattern + PSD_SERVERS + --servers", accs)

# 5. a rank or shard the job does not have: one line, exit 2
job = write(env, "bad.yaml", two_server_job("bad"))
code, _, err = run([env.prog("psworker"), "--config", job], 30,
                   env=dict(base_env, SLURM_PROCID="2"))
env.check(code == 2 and err.strip() ==
          "psworker: SLURM_PROCID=2 gives rank 2, but the job has 2 workers",
          f"rank >= workers is refused in one line (exit {code}: {err.strip()})")
code, _, err = run([env.prog("psd"), "--config", job], 30, env=dict(base_env, PSD_SHARD="2"))
env.check(code == 2 and err.strip() == "psd: PSD_SHARD=2 gives shard 2, but the job has 2 servers",
          f"shard >= servers is refused in one line (exit {code}: {err.strip()})")
code, _, err = run([env.prog("psworker"), "--config", job], 30,
                   env=dict(base_env, TF_CONFIG='{"cluster": {"worker": ["a:1"]}'))
env.check(code == 2 and err.strip().startswith("psworker: TF_CONFIG: not JSON"),
          f"malformed TF_CONFIG is refused in one line (exit {code}: {err.strip()})")
# --rank beats the environment
code, _, err = run([env.prog("psworker"), "--config", job, "--rank", "5"], 30,
                   env=dict(base_env, PSD_RANK="0"))
env.check(code == 2 and "--rank 5 is outside [0, 2)" in err, "--rank beats PSD_RANK")

stop_procs(env)
env.finish()
