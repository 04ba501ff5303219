#!/usr/bin/env bash
# Creates workers-python/.venv with the pinned worker dependencies (CPU torch) and the worker itself.
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_FIND_LINKS choose where wheels come from; by default
# the local wheel mirror, so pip never waits on an index it cannot reach.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=workers-python/.venv
python=${PYTHON:-python3}
lock=workers-python/requirements.lock
stamp=$venv/.lock.sha256
want=$(sha256sum "$lock" workers-python/pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -x $venv/bin/python && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  echo "python env up to date ($venv)"
  exit 0
fi
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
export PIP_INDEX_URL=${PIP_INDEX_URL:-file:///opt/pypi/simple}
export PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL:-file:///opt/pypi-more/simple}
export PIP_FIND_LINKS=${PIP_FIND_LINKS:-/opt/wheels}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# --no-deps: the lock is the whole environment, pinned. Resolving again would ask for what a pin
# needs only on other Pythons (redis wants async-timeout, for its asyncio client, below 3.11.3),
# which the local mirror does not carry.
"$venv/bin/pip" install -q --no-deps -r "$lock" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
"$venv/bin/pip" install -q --no-deps -e workers-python
echo "$want" > "$stamp"
echo "python env ready ($venv)"
