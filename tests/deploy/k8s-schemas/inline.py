#!/usr/bin/env python3
"""inline.py RAW_DIR OUT_DIR — from ts-json-schema-generator's output
(RAW_DIR/<Kind>.raw.json) writes OUT_DIR/<file>.json, one self-contained
schema a kind: the definitions the kind reaches, renamed without the
interface's I prefix, the kind's own at the top. Run by generate.sh."""
import json
import sys

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
    for kind, name in FILES.items():
        d = json.load(open(f"{raw}/{kind}.raw.json"))
        defs = d["definitions"]
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
