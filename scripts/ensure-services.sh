#!/usr/bin/env bash
# Start Redis and PostgreSQL when they are installed but not running (CI and fresh machines).
set -euo pipefail

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q >/dev/null 2>&1; }

if ! redis_up && command -v redis-server >/dev/null; then
  echo "starting redis-server"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! pg_up && command -v pg_ctlcluster >/dev/null; then
  echo "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
for _ in $(seq 1 50); do
  if redis_up && pg_up; then exit 0; fi
  sleep 0.2
done
redis_up || echo "Redis is not reachable on 127.0.0.1:6379: install redis-server or start it" >&2
pg_up || echo "PostgreSQL is not reachable on 127.0.0.1:5432: install postgresql or start it" >&2
exit 1
