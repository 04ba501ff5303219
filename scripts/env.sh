# Sourced by the other scripts: puts a Node.js >= 22 on PATH (installing Node 24 LTS from the npm
# registry's `node` package into .tools/ when the machine's is older), installs the npm packages
# and the Python environment when they are missing or stale, and finds redis-server.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [[ -x $ROOT/.tools/node/node_modules/.bin/node ]]; then export PATH=$ROOT/.tools/node/node_modules/.bin:$PATH; fi
if (( $(node_major) < 22 )); then
  echo "== installing Node.js 24 into .tools/node (the machine has $(node --version 2>/dev/null || echo none))"
  npm install --prefix "$ROOT/.tools/node" --no-save --no-audit --no-fund --loglevel=error node@24 >/dev/null
  export PATH=$ROOT/.tools/node/node_modules/.bin:$PATH
fi

lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.makam-lock || "$(cat node_modules/.makam-lock)" != "$lock_sum" ]]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.makam-lock
fi

bash scripts/setup-python.sh

if ! command -v redis-server >/dev/null && [[ -z ${REDIS_URL:-} ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing redis-server (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server not found: install it (apt-get install redis-server) or set REDIS_URL" >&2
    exit 1
  fi
fi
