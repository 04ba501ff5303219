#!/usr/bin/env bash
# Regenerates the worker contract's code from proto/: TypeScript (protoc-gen-es, @bufbuild/protobuf v2)
# and Python (grpcio-tools). With --check, generates into a temporary tree and fails if the
# committed code differs (stale).
set -euo pipefail
cd "$(dirname "$0")/.."
py=workers-python/.venv/bin/python
ts_out=services/shared/src/gen
py_out=workers-python/src
check=${1:-}
if [[ $check == --check ]]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  ts_out=$tmp/ts; py_out=$tmp/py
fi
rm -rf "$ts_out" "$py_out/makam"
mkdir -p "$ts_out" "$py_out"
protos=$(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
(cd proto && "../$py" -m grpc_tools.protoc -I . \
  --plugin=protoc-gen-es=../node_modules/.bin/protoc-gen-es \
  --es_out="$( [[ $ts_out = /* ]] && echo "$ts_out" || echo "../$ts_out")" --es_opt=target=js+dts,import_extension=js \
  --python_out="$( [[ $py_out = /* ]] && echo "$py_out" || echo "../$py_out")" \
  --pyi_out="$( [[ $py_out = /* ]] && echo "$py_out" || echo "../$py_out")" \
  --grpc_python_out="$( [[ $py_out = /* ]] && echo "$py_out" || echo "../$py_out")" \
  $protos)
# Namespace packages need no __init__.py, but setuptools' find and some tools do.
find "$py_out/makam" -type d -exec touch {}/__init__.py \;
if [[ $check == --check ]]; then
  if ! diff -r services/shared/src/gen "$ts_out" >/dev/null || ! diff -r -x __pycache__ workers-python/src/makam "$py_out/makam" >/dev/null; then
    echo "generated code is stale: run 'npm run gen' and commit the result" >&2
    diff -r services/shared/src/gen "$ts_out" | head -20 >&2 || true
    diff -r -x __pycache__ workers-python/src/makam "$py_out/makam" | head -20 >&2 || true
    exit 1
  fi
  echo "generated code is up to date"
fi
