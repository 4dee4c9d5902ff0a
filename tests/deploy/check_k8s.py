#!/usr/bin/env python3
"""check_k8s.py --source DIR | --self-test — validates deploy/kubernetes
offline: yamllint (deploy/kubernetes/.yamllint) on every manifest, then each
resource the kustomization lists (and the Secret its secretGenerator makes)
against the strict JSON schema of its kind in tests/deploy/k8s-schemas
(unknown fields and wrong types refused), then the fields Kubernetes 1.28
lacks or keeps behind a feature gate, and what the manifests promise one
another (the names, the Secret's mode, the replicas and completions against
the job file). --self-test feeds it broken manifests that must be refused.
Exit 0 when all is well, 1 with one line a problem."""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import yaml

SCHEMAS = {("v1", "ConfigMap"): "configmap-v1.json", ("v1", "Secret"): "secret-v1.json",
           ("v1", "Service"): "service-v1.json",
           ("apps/v1", "StatefulSet"): "statefulset-apps-v1.json",
           ("batch/v1", "Job"): "job-batch-v1.json"}
# in the schemas (kubernetes-models 4.5.1 follows a later Kubernetes) but not
# usable on 1.28 as released: absent, alpha, or behind a gate that is off
NEWER_THAN_128 = {"backoffLimitPerIndex", "maxFailedIndexes", "podReplacementPolicy",
                  "managedBy", "successPolicy", "trafficDistribution", "appArmorProfile",
                  "image", "resizePolicy", "supplementalGroupsPolicy"}
def schema_for(schema_dir, doc, cache={}):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in SCHEMAS:
        return None
    if key not in cache:
        with open(os.path.join(schema_dir, SCHEMAS[key])) as f:
            cache[key] = json.load(f)
    return cache[key]


def newer_fields(node, path, out):
    for k, v in (node.items() if isinstance(node, dict) else enumerate(node)
                 if isinstance(node, list) else ()):
        p = f"{path}.{k}" if isinstance(node, dict) else f"{path}[{k}]"
        # a container's image (a string) is old; a volume's image source is new
        if k in NEWER_THAN_128 and not (k == "image" and isinstance(v, str)):
            out.append(p)
        newer_fields(v, p, out)


def generated_secrets(kust, base):
    """The Secrets the secretGenerator makes (the files' contents need not
    exist: the keys are made by the user; the data are placeholders)."""
    out = []
    for g in kust.get("secretGenerator", []):
        data = {}
        for f in g.get("files", []):
            key = f.split("=", 1)[0] if "=" in f else os.path.basename(f)
            data[key] = "cGxhY2Vob2xkZXI="
        out.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": g["name"]},
                    "type": "Opaque", "data": data})
    return out


def check(kdir, schema_dir):
    problems = []
    manifests = sorted(os.path.join(kdir, f) for f in os.listdir(kdir)
                       if f.endswith((".yaml", ".yml")))
    lint = subprocess.run([shutil.which("yamllint") or "yamllint", "-f", "parsable", "-c",
                           os.path.join(kdir, ".yamllint")] + manifests,
                          capture_output=True, text=True)
    if lint.returncode != 0:
        problems += [f"yamllint: {l}" for l in (lint.stdout + lint.stderr).splitlines() if l]
    kust_path = os.path.join(kdir, "kustomization.yaml")
    with open(kust_path) as f:
        kust = yaml.safe_load(f)
    docs = []
    for r in kust.get("resources", []):
        path = os.path.join(kdir, r)
        if not os.path.isfile(path):
            problems.append(f"kustomization.yaml: resource {r} is missing")
            continue
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((r, d))
    listed = set(kust.get("resources", []))
    for m in manifests:
        b = os.path.basename(m)
        if b != "kustomization.yaml" and b not in listed:
            problems.append(f"{b}: not listed in kustomization.yaml's resources")
    docs += [("kustomization.yaml secretGenerator", s) for s in generated_secrets(kust, kdir)]
    for name, d in docs:
        what = f"{name}: {d.get('kind')} {d.get('metadata', {}).get('name')}"
        schema = schema_for(schema_dir, d)
        if schema is None:
            problems.append(f"{what}: no schema for {d.get('apiVersion')} {d.get('kind')}")
            continue
        v = jsonschema.Draft7Validator(schema)
        for e in sorted(v.iter_errors(d), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in e.absolute_path) or "(top)"
            problems.append(f"{what}: {where}: {e.message[:200]}")
        new = []
        newer_fields(d, "", new)
        problems += [f"{what}: {p[1:]}: not in Kubernetes 1.28 (or gated off there)" for p in new]
    problems += consistency([d for _, d in docs])
    return problems


def consistency(docs):
    """What the manifests promise one another."""
    p = []
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    cm, sts, job = by.get(("ConfigMap", "psd-job")), by.get(("StatefulSet", "psd")), \
        by.get(("Job", "psworker"))
    svc = by.get(("Service", "psd"))
    if not (cm and sts and job and svc):
        return ["the ConfigMap psd-job, Service psd, StatefulSet psd and Job psworker "
                "must all be there"]
    jobfile = yaml.safe_load(cm["data"]["job.yaml"])
    servers = jobfile["servers"]
    count = servers["count"] if isinstance(servers, dict) else len(servers)
    if sts["spec"]["replicas"] != count:
        p.append(f"StatefulSet psd: replicas {sts['spec']['replicas']}, but the job file "
                 f"has {count} servers")
    js = job["spec"]
    if not (js.get("completionMode") == "Indexed"
            and js.get("completions") == js.get("parallelism") == jobfile["workers"]):
        p.append("Job psworker: must be Indexed with completions = parallelism = the job "
                 f"file's workers ({jobfile['workers']})")
    if svc["spec"].get("clusterIP") != "None" or sts["spec"].get("serviceName") != "psd":
        p.append("Service psd must be headless and the StatefulSet's serviceName")
    for d in (sts, job):
        pod = d["spec"]["template"]["spec"]
        sc = pod.get("securityContext", {})
        if not (sc.get("runAsNonRoot") and sc.get("runAsUser")):
            p.append(f"{d['kind']}: the pod must run as a non-root user")
        for c in pod.get("initContainers", []) + pod["containers"]:
            csc = c.get("securityContext", {})
            if not (csc.get("readOnlyRootFilesystem") is True
                    and csc.get("allowPrivilegeEscalation") is False
                    and csc.get("capabilities", {}).get("drop") == ["ALL"]):
                p.append(f"{d['kind']} container {c['name']}: needs readOnlyRootFilesystem, "
                         "allowPrivilegeEscalation false and capabilities drop ALL")
        for vol in pod.get("volumes", []):
            s = vol.get("secret")
            if s is not None and s.get("defaultMode") != 0o400:
                p.append(f"{d['kind']} volume {vol['name']}: the Secret's defaultMode must "
                         "be 0400")
    return p


def self_test(kdir, schema_dir):
    """Each broken copy must be refused, the good one passed."""
    fails = 0
    good = check(kdir, schema_dir)
    if good:
        print("check_k8s: self-test: the real manifests fail:\n  " + "\n  ".join(good))
        return 1

    def broken(name, fname, edit, want):
        nonlocal fails
        with tempfile.TemporaryDirectory() as tmp:
            k = os.path.join(tmp, "k")
            shutil.copytree(kdir, k)
            path = os.path.join(k, fname)
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(edit(text))
            got = check(k, schema_dir)
            if not any(want in g for g in got):
                print(f"check_k8s: self-test: {name}: not refused (wanted '{want}'; got {got})")
                fails += 1

    def yaml_edit(fn):
        def e(text):
            d = yaml.safe_load(text)
            fn(d)
            return yaml.safe_dump(d, sort_keys=False, width=90)
        return e

    def pod(d):
        return d["spec"]["template"]["spec"]
    broken("a string for an integer", "statefulset.yaml",
           yaml_edit(lambda d: d["spec"].__setitem__("replicas", "two")),
           "spec/replicas: 'two' is not of type")
    broken("a fraction for an integer", "job-psworker.yaml",
           yaml_edit(lambda d: d["spec"].__setitem__("completions", 2.5)),
           "spec/completions: 2.5 is not of type 'integer'")
    broken("an unknown field (strict)", "job-psworker.yaml",
           yaml_edit(lambda d: pod(d)["containers"][0].__setitem__("commands", ["psworker"])),
           "'commands' was unexpected")
    broken("a misspelt enum", "job-psworker.yaml",
           yaml_edit(lambda d: d["spec"].__setitem__("completionMode", "indexed")),
           "spec/completionMode")
    broken("a field 1.28 lacks", "job-psworker.yaml",
           yaml_edit(lambda d: d["spec"].__setitem__("backoffLimitPerIndex", 2)),
           "backoffLimitPerIndex: not in Kubernetes 1.28")
    broken("a missing required field", "service.yaml",
           yaml_edit(lambda d: d["spec"]["ports"][0].pop("port")),
           "'port' is a required property")
    broken("replicas against the job file", "statefulset.yaml",
           yaml_edit(lambda d: d["spec"].__setitem__("replicas", 3)),
           "replicas 3, but the job file has 2 servers")
    broken("a readable secret mode", "statefulset.yaml",
           yaml_edit(lambda d: pod(d)["volumes"][1]["secret"].__setitem__("defaultMode", 0o644)),
           "defaultMode must be 0400")
    broken("yamllint", "service.yaml", lambda t: t + "extra:   [a,b]  \n", "yamllint:")
    if fails == 0:
        print("check_k8s: self-test: 9 broken manifests refused, the real ones pass")
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    src = os.path.abspath(a.source)
    kdir = os.path.join(src, "deploy", "kubernetes")
    schema_dir = os.path.join(src, "tests", "deploy", "k8s-schemas")
    if a.self_test:
        return self_test(kdir, schema_dir)
    problems = check(kdir, schema_dir)
    for p in problems:
        print(f"check_k8s: {p}")
    if problems:
        return 1
    print(f"check_k8s: deploy/kubernetes: every manifest passes yamllint and its strict "
          f"schema ({', '.join(sorted(set(v for v in SCHEMAS.values())))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
