#!/usr/bin/env bash
# One command for a laptop: starts Redis, a Python worker on CPU, the API and a cpu-class
# dispatcher, then submits a fine-tuning job on the shipped Turkish sample, shows its progress,
# prints the final metrics and downloads the model into var/demo/.
#   bash scripts/demo.sh          run the demo job, then stop the stack
#   bash scripts/demo.sh --keep   leave the stack running afterwards (Ctrl-C stops it)
source "$(dirname "$0")/env.sh"
keep=false; [[ ${1:-} == --keep ]] && keep=true
demo=$ROOT/var/demo
mkdir -p "$demo/logs"
api_port=${MAKAM_API_PORT:-8080}
worker_addr=${MAKAM_WORKERS:-127.0.0.1:50051}
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [[ -z ${REDIS_URL:-} ]]; then
  redis_port=${MAKAM_DEMO_REDIS_PORT:-6390}
  mkdir -p "$demo/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$demo/redis" --appendonly yes --maxmemory-policy noeviction \
    --save '' >"$demo/logs/redis.log" 2>&1 &
  pids+=($!)
  export REDIS_URL=redis://127.0.0.1:$redis_port
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
export MAKAM_STORE_DIR=${MAKAM_STORE_DIR:-$demo/store}
# A laptop has one class, so every job is placed on its CPU worker.
export MAKAM_RESOURCE_CLASSES=${MAKAM_RESOURCE_CLASSES:-cpu}

workers-python/.venv/bin/python -m makam_worker --listen "$worker_addr" --state-dir "$demo/worker" >"$demo/logs/worker.log" 2>&1 &
pids+=($!)
MAKAM_API_PORT=$api_port node services/api/src/server.ts >"$demo/logs/api.log" 2>&1 &
pids+=($!)
MAKAM_CLASS=cpu MAKAM_WORKERS=$worker_addr node services/dispatcher/src/main.ts >"$demo/logs/dispatcher.log" 2>&1 &
pids+=($!)
# The URL without its user:password part: a password must not reach the terminal or its logs.
redis_shown=$(printf '%s' "$REDIS_URL" | sed -E 's#//[^@/]*@#//***@#')
echo "stack: API http://127.0.0.1:$api_port, worker $worker_addr, Redis $redis_shown (logs in var/demo/logs)"

# A tenant and its API key for the demo, made straight in Redis by the operator's command.
api_key=${MAKAM_API_KEY:-$(node services/api/src/admin.ts keys create --tenant demo --name demo | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).key))')}
echo "API key for tenant demo: $api_key"
node scripts/demo-client.ts --api "http://127.0.0.1:$api_port" --api-key "$api_key" --worker "$worker_addr" \
  --data examples/data/lyrics-sample.jsonl --job examples/jobs/finetune-tiny-bert.json --out "$demo"

if $keep; then
  echo "the stack keeps running; Ctrl-C stops it"
  wait
fi
