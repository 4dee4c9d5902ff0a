#!/usr/bin/env python3
"""inline.py RAW_DIR OUT_DIR — from ts-json-schema-generator's output
(RAW_DIR/<Kind>.raw.json) writes OUT_DIR/<file>.json, one self-contained
schema a kind: the kind's own definition at the top, the definitions it
reaches under "definitions". TypeScript has one number type, so a property
that the OpenAPI says is an integer is found in kubernetes-models' compiled
validators (RAW_DIR/node_modules/.../_schemas/*V1<Name>.js: the property's
validator checks type integer) and made "integer". Run by generate.sh."""
import glob
import json
import os
import re
import sys


def integer_props(raw):
    """{definition name (IStatefulSetSpec): {its integer properties}}."""
    out = {}
    files = glob.glob(f"{raw}/node_modules/kubernetes-models/_schemas/IoK8s*V1*.js")
    files += glob.glob(f"{raw}/node_modules/@kubernetes-models/apimachinery/_schemas/IoK8s*V1*.js")
    for path in files:
        m = re.search(r"V1([A-Z]\w*)\.js$", os.path.basename(path))
        if not m:
            continue
        with open(path) as f:
            t = f.read()
        head = t.find("validate=function")
        if head < 0:
            continue
        end = t.find("function validate", head + len("validate=function"))
        props = dict(re.findall(r"void 0===data\.(\w+)\|\|(validate\d+)\(", t[head:end]))
        funcs = {}
        for fm in re.finditer(r"function (validate\d+)\(", t):
            nxt = t.find("function validate", fm.end())
            funcs[fm.group(1)] = t[fm.start(): nxt if nxt > 0 else len(t)]
        ints = {p for p, fn in props.items() if 'params:{type:"integer"}' in funcs.get(fn, "")}
        out.setdefault("I" + m.group(1), set()).update(ints)
    return out


def integers(defs, ints):
    for name, d in defs.items():
        for prop, s in d.get("properties", {}).items():
            if prop in ints.get(name, ()) and s.get("type") == "number":
                s["type"] = "integer"

FILES = {"ConfigMap": "configmap-v1.json", "Secret": "secret-v1.json",
         "Service": "service-v1.json", "StatefulSet": "statefulset-apps-v1.json",
         "Job": "job-batch-v1.json"}


def refs(node, out):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            out.add(r.rsplit("/", 1)[1])
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def main():
    raw, out = sys.argv[1], sys.argv[2]
    ints = integer_props(raw)
    for kind, name in FILES.items():
        d = json.load(open(f"{raw}/{kind}.raw.json"))
        defs = d["definitions"]
        integers(defs, ints)
        top = defs[kind]
        while "$ref" in top and len(top) == 1:  # Kind -> IKind
            top = defs[top["$ref"].rsplit("/", 1)[1]]
        seen, todo = set(), set()
        refs(top, todo)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                refs(defs[n], todo)
        schema = {"$schema": "http://json-schema.org/draft-07/schema#",
                  "description": f"{kind} (strict: unknown fields refused), from "
                                 "kubernetes-models 4.5.1; made by generate.sh"}
        schema.update(top)
        schema["definitions"] = {n: defs[n] for n in sorted(seen)}
        with open(f"{out}/{name}", "w") as f:
            json.dump(schema, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
