#!/usr/bin/env python3
"""test_k8s_env.py — runs deploy/kubernetes's pods as processes on loopback:
psd and psworker get exactly the command, arguments and environment the
StatefulSet and the Indexed Job give them (POD_NAMESPACE as the downward API
would, HOSTNAME psd-N for shard N, JOB_COMPLETION_INDEX i for worker i,
CREDENTIALS_DIRECTORY filled as the init container fills it) and the job
file of the ConfigMap, and the job must train to the accuracy psrun gets on
the same job.

What is mapped, and nothing else: the pods' paths to scratch folders
(/etc/psd/job.yaml, the Secret's mount /etc/psd/keys with keys from psctl
keygen laid out as the Secret's items, each pod's /var/lib/psd, the image's
/usr/share/psd/examples to config/examples), the metrics ports to free
loopback ports (every pod has 9464 to itself; here they share one host),
and the cluster names psd-N.psd.NAMESPACE.svc to 127.0.0.1 free ports through
PSD_SERVERS, the override psd, psworker and psctl read before the job file's
servers (docs/deployment.md#ranks-shards-and-endpoints-from-the-environment):
the job file keeps its servers pattern, and no --shard or --rank is added."""
import json
import os
import re
import shutil
import sys
import time
import urllib.request

import yaml

import harness

SRC_KEYS = "/etc/psd/keys"
LAUNCH_VARS = {"JOB_COMPLETION_INDEX", "TF_CONFIG", "POD_NAMESPACE", "CREDENTIALS_DIRECTORY"}


def load(env, name):
    with open(os.path.join(env.source, "deploy", "kubernetes", name)) as f:
        return yaml.safe_load(f)


def pod_env(container, namespace, creds):
    """The container's env as the kubelet sets it (fieldRef: the downward API)."""
    out = {}
    for e in container.get("env", []):
        if "value" in e:
            out[e["name"]] = e["value"]
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            out[e["name"]] = namespace
        else:
            raise SystemExit(f"test_k8s_env: env {e['name']}: a source this test cannot give")
    if "CREDENTIALS_DIRECTORY" in out:
        out["CREDENTIALS_DIRECTORY"] = creds
    return out


def lay_keys(env, pod_spec, keys_src, dest, creds):
    """The Secret volume's items under dest (mode 0400 as defaultMode says),
    then what the init container does: the secret keys copied to creds."""
    vol = next(v for v in pod_spec["volumes"] if "secret" in v)
    mode = vol["secret"]["defaultMode"]
    for item in vol["secret"]["items"]:
        p = os.path.join(dest, item["path"])
        os.makedirs(os.path.dirname(p), exist_ok=True)
        shutil.copyfile(os.path.join(keys_src, item["key"]), p)
        os.chmod(p, mode)
    os.makedirs(creds)
    for f in os.listdir(dest):
        if f.endswith(".key_secret"):
            shutil.copyfile(os.path.join(dest, f), os.path.join(creds, f))
            os.chmod(os.path.join(creds, f), 0o400)


def with_env(e, cmd):
    """cmd with the pod's variables added to this environment (env(1): Proc
    takes no env of its own)."""
    unset = []
    for k in os.environ:  # what a pod would not have: another launcher's words
        if k not in e and (k.startswith(("PSD_", "SLURM_")) or k in LAUNCH_VARS):
            unset += ["-u", k]
    return ["/usr/bin/env"] + unset + [f"{k}={v}" for k, v in sorted(e.items())] + cmd


def metrics_up(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def main():
    env = harness.Env()
    cm, sts, job = load(env, "configmap-job.yaml"), load(env, "statefulset.yaml"), \
        load(env, "job-psworker.yaml")
    jobfile = yaml.safe_load(cm["data"]["job.yaml"])
    shards, workers = sts["spec"]["replicas"], job["spec"]["completions"]
    namespace = "psd-test"
    # keys as a deployer makes them (README: psctl keygen into keys/)
    keys = os.path.join(env.tmp, "keys")
    os.makedirs(keys)
    for name in ("psd", "worker", "admin"):
        code, _, err = harness.run([env.prog("psctl"), "keygen", os.path.join(keys, name)], 30)
        if code != 0:
            raise SystemExit(f"psctl keygen {name}: {err}")

    ports = [harness.free_port() for _ in range(shards)]
    mports = [harness.free_port() for _ in range(shards)]
    loopback = [f"tcp://127.0.0.1:{p}" for p in ports]

    def job_text(servers, state):
        j = json.loads(json.dumps(jobfile))
        j["servers"] = servers
        j["metrics"]["listen"] = [f"127.0.0.1:{p}" for p in mports]
        for k in ("train", "test"):
            j["data"][k] = j["data"][k].replace("/usr/share/psd/examples/data", env.data)
        j["checkpoint"]["dir"] = j["checkpoint"]["dir"].replace("/var/lib/psd", state)
        j["output"] = j["output"].replace("/var/lib/psd", state)
        return j

    def write_job(pod, servers, keydir):
        state = os.path.join(env.tmp, pod, "state")
        os.makedirs(state, exist_ok=True)
        j = job_text(servers, state)
        curve = j["security"]["curve"]
        for k, v in curve.items():
            curve[k] = v.replace(SRC_KEYS, keydir)
        path = os.path.join(env.tmp, pod, "job.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(j, f, sort_keys=False)
        return path, state

    # the job file as the pods get it must parse (the pattern needs POD_NAMESPACE)
    probe_dir = os.path.join(env.tmp, "probe")
    os.makedirs(probe_dir)
    probe, _ = write_job("probe", jobfile["servers"], os.path.join(env.tmp, "probe", "keys"))
    lay_keys(env, sts["spec"]["template"]["spec"], keys, os.path.join(probe_dir, "keys"),
             os.path.join(probe_dir, "creds"))
    code, out, err = harness.run([env.prog("psworker"), "--config", probe, "--describe"], 30,
                                 env=dict(os.environ, POD_NAMESPACE=namespace,
                                          JOB_COMPLETION_INDEX="0",
                                          PSD_SERVERS=",".join(loopback)))
    env.check(code == 0, "psworker --describe reads the ConfigMap's job file (servers "
              f"pattern, POD_NAMESPACE, PSD_SERVERS): exit {code} {err.strip()[:200]}")
    if code != 0:
        env.finish()

    procs = []
    for i in range(shards):
        pod = f"psd-{i}"
        spec = sts["spec"]["template"]["spec"]
        c = spec["containers"][0]
        keydir, creds = os.path.join(env.tmp, pod, "keys"), os.path.join(env.tmp, pod, "creds")
        path, _ = write_job(pod, jobfile["servers"], keydir)
        lay_keys(env, spec, keys, keydir, creds)
        e = pod_env(c, namespace, creds)
        e["HOSTNAME"] = pod
        e["PSD_SERVERS"] = ",".join(loopback)
        cmd = [env.prog(c["command"][0])] + [path if a == "/etc/psd/job.yaml" else a
                                            for a in c["args"]]
        procs.append(harness.Proc(env, pod, with_env(e, cmd)))
    # the readiness probe: GET /metrics on each shard's metrics port
    probe_c = sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    env.check(probe_c["path"] == "/metrics" and harness.wait_for(
        lambda: all(metrics_up(p) for p in mports), 30, "every shard's /metrics"),
        f"every psd pod is ready by its readiness probe ({probe_c['path']})")

    wprocs = []
    for i in range(workers):
        pod = f"psworker-{i}"
        spec = job["spec"]["template"]["spec"]
        c = spec["containers"][0]
        keydir, creds = os.path.join(env.tmp, pod, "keys"), os.path.join(env.tmp, pod, "creds")
        path, state = write_job(pod, jobfile["servers"], keydir)
        lay_keys(env, spec, keys, keydir, creds)
        e = pod_env(c, namespace, creds)
        e["HOSTNAME"] = f"psworker-{i}-x7k2p"
        e["JOB_COMPLETION_INDEX"] = str(i)
        e["PSD_SERVERS"] = ",".join(loopback)
        cmd = [env.prog(c["command"][0])] + [path if a == "/etc/psd/job.yaml" else a
                                            for a in c["args"]]
        wprocs.append((harness.Proc(env, pod, with_env(e, cmd)), state))
    codes = [p.wait(240) for p, _ in wprocs]
    env.check(codes == [0] * workers, f"every worker of the Indexed Job exits 0 ({codes})")
    for p in procs:
        if p.p.poll() is None:
            p.p.terminate()
            p.wait(30)
    harness.stop_procs(env)
    for p in procs + [w for w, _ in wprocs]:
        p.show()
    for i, p in enumerate(procs):
        env.check(f"shard {i}/{shards}" in p.text(),
                  f"pod psd-{i} served shard {i} (from its host name's ordinal)")
    model = os.path.join(wprocs[0][1], "out", os.path.basename(jobfile["output"]))
    env.check(os.path.isfile(os.path.join(model, "manifest.json")),
              "rank 0 (JOB_COMPLETION_INDEX 0) wrote the model to its volume")
    # psrun on the same job file, its servers written out on loopback
    ref_state = os.path.join(env.tmp, "psrun")
    os.makedirs(ref_state)
    j = job_text([f"tcp://127.0.0.1:{harness.free_port()}" for _ in range(shards)], ref_state)
    curve = j["security"]["curve"]
    for k, v in curve.items():
        curve[k] = v.replace(SRC_KEYS, os.path.join(env.tmp, "psd-0", "keys"))
    curve["client_secret_key"] = os.path.join(env.tmp, "psworker-0", "keys", "worker.key_secret")
    ref = os.path.join(ref_state, "job.yaml")
    with open(ref, "w") as f:
        yaml.safe_dump(j, f, sort_keys=False)
    code, summary, _ = harness.psrun(env, ref)
    env.check(code == 0 and summary is not None, "psrun trains the same job")
    m = re.search(r"done: rank 0, .*test accuracy ([0-9.]+)", wprocs[0][0].text())
    if code == 0 and m:
        got, want = float(m.group(1)), summary["test_metric"]["value"]
        env.check(abs(got - want) <= 0.005,
                  f"the pods' job reaches test accuracy {got:.4f}, psrun's {want:.4f}")
    else:
        env.check(False, "rank 0's last line gives its test accuracy")
    env.finish()


if __name__ == "__main__":
    main()
