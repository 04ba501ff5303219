#!/bin/sh
# A data pod starts as a replica of whichever pod the sentinels call primary now; only when no
# sentinel answers (the first start of the set) is redis-0 the primary. Starting as a primary
# after a failover would make two.
set -eu
me="$(hostname).redis"
primary=""
for s in 0 1 2; do
  primary=$(env -u REDISCLI_AUTH redis-cli -h "redis-sentinel-$s.redis-sentinel" -p 26379 --raw sentinel get-master-addr-by-name mymaster 2>/dev/null | head -n 1) || true
  [ -n "$primary" ] && break
done
[ -n "$primary" ] || primary=redis-0.redis
set -- --appendonly yes --appendfsync always --save "" \
  --maxmemory 2gb --maxmemory-policy noeviction \
  --min-replicas-to-write 1 --min-replicas-max-lag 10 \
  --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" \
  --replica-announce-ip "$me" --dir /data
if [ "$primary" != "$me" ]; then set -- "$@" --replicaof "$primary" 6379; fi
exec redis-server "$@"
