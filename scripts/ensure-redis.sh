#!/usr/bin/env bash
# Makes sure Redis answers at $REDIS_URL (default redis://127.0.0.1:6379).
# If it does not and the URL points at this machine, starts a local redis-server with
# append-only persistence under $DATA_DIR/redis; installs it with apt-get first when missing
# and we are root (--install). Otherwise says in one line how to get one and exits 1.
set -euo pipefail
url="${REDIS_URL:-redis://127.0.0.1:6379}"
data_dir="${DATA_DIR:-./data}"
install=0
[ "${1:-}" = "--install" ] && install=1

scheme="${url%%://*}"
hostport="${url#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
if [[ "$hostport" == \[*\]* ]]; then
  # [IPv6]:port
  host="${hostport#\[}"; host="${host%%\]*}"; rest="${hostport#*\]}"; port="${rest#:}"
  [ -n "$port" ] || port=6379
else
  host="${hostport%%:*}"; port="${hostport##*:}"
  [ "$port" = "$hostport" ] && port=6379
fi
[ -n "$host" ] || host=127.0.0.1
# The URL as messages show it: without its user and password.
shown="$scheme://$hostport"

reachable() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if reachable; then exit 0; fi

case "$host" in
  127.0.0.1|localhost|::1) ;;
  *) echo "Redis is not reachable at $shown; start it there or set REDIS_URL to a reachable Redis." >&2; exit 1 ;;
esac

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found; installing it with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  else
    echo "Redis is not reachable at $shown: install it (sudo apt-get install -y redis-server) or set REDIS_URL." >&2
    exit 1
  fi
fi

mkdir -p "$data_dir/redis"
redis_dir="$(cd "$data_dir/redis" && pwd)"
# Listening where the URL points: [::1] gets ::1, localhost and 127.0.0.1 get 127.0.0.1.
bind=127.0.0.1
[ "$host" = "::1" ] && bind=::1
echo "starting redis-server on $host:$port (append-only, data in $redis_dir)" >&2
redis-server --daemonize yes --bind "$bind" --port "$port" --dir "$redis_dir" \
  --appendonly yes --save "" --logfile "$redis_dir/redis.log" --pidfile "$redis_dir/redis.pid"
for _ in $(seq 1 50); do
  reachable && exit 0
  sleep 0.1
done
echo "redis-server did not come up on port $port; see $redis_dir/redis.log" >&2
exit 1
