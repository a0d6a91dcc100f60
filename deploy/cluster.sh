#!/usr/bin/env bash
# Several gateway processes on loopback behind a real nginx, with deploy/nginx.conf: the
# docker-compose.yml deployment without Docker.
#   deploy/cluster.sh start [N]   N gateways (default 3) on ports $BASE_PORT+1.. (18001..),
#                                 nginx on $NGINX_PORT (8080); files under $CLUSTER_DIR (.data/cluster)
#   deploy/cluster.sh stop        SIGTERM everything (in-flight requests finish), wait for it to end
# DATABASE_URL as for `make run` (scripts/ensure-db.sh finds or starts one). nginx is installed with
# apt-get when missing and we are root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dir=${CLUSTER_DIR:-$root/.data/cluster}
base_port=${BASE_PORT:-18000}
py=${PYTHON:-.venv/bin/python}
port=${NGINX_PORT:-8080}

stop() {
  [ -f "$dir/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  for pidfile in "$dir"/gateway-*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
  done
  echo "cluster stopped"
}

start() {
  local n=${1:-3}
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    [ "$(id -u)" = 0 ] || { echo "cluster: nginx is not installed (run as root to install it)" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && apt-get install -y -qq nginx-light >&2
  fi
  local nginx_bin
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  stop >/dev/null
  mkdir -p "$dir/logs"
  DATABASE_URL=$(PYTHON=$py scripts/ensure-db.sh)
  export DATABASE_URL
  : > "$dir/gateway-upstreams.conf"
  for i in $(seq 1 "$n"); do
    local gport=$((base_port + i))
    HOST=127.0.0.1 PORT=$gport setsid "$py" -m app >"$dir/logs/gateway-$i.log" 2>&1 </dev/null &
    echo $! > "$dir/gateway-$i.pid"
    echo "server 127.0.0.1:$gport max_fails=2 fail_timeout=5s;" >> "$dir/gateway-upstreams.conf"
  done
  # Each instance must answer before nginx starts: refused connections would mark it failed
  # (max_fails) and leave nginx with no live upstream for fail_timeout.
  for i in $(seq 1 "$n"); do
    local up=""
    for _ in $(seq 1 200); do
      if curl -sf "http://127.0.0.1:$((base_port + i))/health/live" >/dev/null; then up=1; break; fi
      sleep 0.1
    done
    [ -n "$up" ] || { echo "cluster: gateway $i did not start; see $dir/logs/gateway-$i.log" >&2; exit 1; }
  done
  sed "s/listen 8080;/listen 127.0.0.1:$port;/" deploy/nginx.conf > "$dir/nginx.conf"
  "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -g "pid $dir/nginx.pid; error_log $dir/logs/nginx-error.log;"
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null; then
      echo "cluster: $n gateways behind nginx on http://127.0.0.1:$port (logs in $dir/logs)"
      return 0
    fi
    sleep 0.1
  done
  echo "cluster: not ready; see $dir/logs" >&2
  exit 1
}

case "${1:-}" in
  start) start "${2:-3}" ;;
  stop) stop ;;
  *) echo "usage: $0 start [N] | stop" >&2; exit 2 ;;
esac
