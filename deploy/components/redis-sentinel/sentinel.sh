#!/bin/sh
# A sentinel's configuration is written at each start (sentinels rewrite it as they learn the
# replicas and each other), monitoring the primary the other sentinels know, else redis-0.
set -eu
primary=""
for s in 0 1 2; do
  [ "redis-sentinel-$s" = "$(hostname)" ] && continue
  primary=$(redis-cli -h "redis-sentinel-$s.redis-sentinel" -p 26379 --raw sentinel get-master-addr-by-name mymaster 2>/dev/null | head -n 1) || true
  [ -n "$primary" ] && break
done
[ -n "$primary" ] || primary=redis-0.redis
cat > /data/sentinel.conf <<CONF
port 26379
dir /data
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $(hostname).redis-sentinel
sentinel monitor mymaster $primary 6379 2
sentinel auth-pass mymaster $REDIS_PASSWORD
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 60000
sentinel parallel-syncs mymaster 1
CONF
exec redis-server /data/sentinel.conf --sentinel
