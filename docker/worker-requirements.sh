#!/bin/sh
# worker-requirements.sh LOCK VARIANT: prints LOCK (workers-python/requirements.lock) with its torch
# pin moved to the PyTorch build VARIANT: `cpu`, or a CUDA build such as `cu128`. The lock pins
# the CPU build (`torch==X+cpu`) for development machines; images pick their build here, with
# the index https://download.pytorch.org/whl/VARIANT, and keep every other pin as it is.
set -eu
lock=${1:?usage: worker-requirements.sh LOCK VARIANT}
variant=${2:?usage: worker-requirements.sh LOCK VARIANT}
case $variant in
  cpu | cu[0-9]*) ;;
  *) echo "worker-requirements.sh: VARIANT must be cpu or cuNNN (e.g. cu128), not '$variant'" >&2; exit 2 ;;
esac
if ! grep -Eq '^torch==[0-9][^+[:space:]]*(\+[a-z0-9]+)?[[:space:]]*$' "$lock"; then
  echo "worker-requirements.sh: no 'torch==VERSION' pin in $lock" >&2
  exit 1
fi
sed -E "s/^torch==([0-9][^+[:space:]]*)(\+[a-z0-9]+)?[[:space:]]*\$/torch==\1+${variant}/" "$lock"
