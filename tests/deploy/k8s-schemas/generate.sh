#!/usr/bin/env bash
# generate.sh — remakes the strict JSON schemas in this folder (run by hand,
# never by the tests; needs node and npm). The schemas come from the
# TypeScript models of kubernetes-models 4.5.1 (MIT, made from Kubernetes'
# own OpenAPI, Apache-2.0): ts-json-schema-generator turns the interfaces
# named in kinds.ts into JSON Schema (every object closed with
# additionalProperties: false, the non-optional fields required), and
# inline.py keeps only the definitions each kind reaches, in one file a kind.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo '{"name":"gen","version":"1.0.0","private":true}' > package.json
npm install --no-audit --no-fund kubernetes-models@4.5.1 ts-json-schema-generator@2.4.0 typescript@5.9.3 >/dev/null
cp "$here/kinds.ts" entry.ts
echo '{"compilerOptions":{"strict":true,"moduleResolution":"node","skipLibCheck":true},"files":["entry.ts"]}' > tsconfig.json
for kind in ConfigMap Secret Service StatefulSet Job; do
  npx ts-json-schema-generator --path entry.ts --tsconfig tsconfig.json --type "$kind" \
      --no-type-check --jsDoc none -o "$kind.raw.json"
done
/usr/bin/python3 "$here/inline.py" "$work" "$here"
cp node_modules/kubernetes-models/LICENSE "$here/LICENSE.kubernetes-models"
