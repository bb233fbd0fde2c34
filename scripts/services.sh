#!/usr/bin/env bash
# The servers the scale-out backends are tested against, on loopback, for this checkout only:
# PostgreSQL (Debian's 15), Redis (Debian's redis-server) and an S3-compatible server (moto's,
# from PyPI, in target/pytools).
#
#   scripts/services.sh start   # installs what is missing, starts all three, prints `export` lines
#   scripts/services.sh stop    # stops them and deletes their data
#
# `start` prints the variables the tests read (IDLEGRID_TEST_POSTGRES, IDLEGRID_TEST_REDIS,
# IDLEGRID_TEST_S3); use it as `eval "$(scripts/services.sh start)"`. Everything else it says
# goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
# Data lives under /tmp so the postgres user can reach it whatever the checkout's permissions.
STATE="/tmp/idlegrid-services-$(printf '%s' "$PWD" | sha256sum | cut -c1-12)"
PG_BIN=/usr/lib/postgresql/15/bin

say() { echo "services: $*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install_missing() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ -x "$PG_BIN/postgres" ] || missing+=(postgresql-15)
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      say "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})"
      exit 1
    fi
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ! -x target/pytools/bin/moto_server ] ||
    ! target/pytools/bin/pip show moto 2>/dev/null | grep -q "^Version: $MOTO_VERSION$"; then
    say "installing moto $MOTO_VERSION into target/pytools"
    [ -x target/pytools/bin/pip ] || python3 -m venv target/pytools
    target/pytools/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
}

wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  say "$what did not come up; its log is in $STATE"
  exit 1
}

start() {
  stop_quietly
  install_missing
  mkdir -p "$STATE"
  chmod 755 "$STATE"

  local pg_port redis_port s3_port
  pg_port=$(free_port)
  redis_port=$(free_port)
  s3_port=$(free_port)

  mkdir -p "$STATE/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$STATE/pg"
  as_postgres "$PG_BIN/initdb" -D "$STATE/pg/data" -A trust -U postgres >"$STATE/pg-init.log" 2>&1
  # fsync off: test data is thrown away, and the suite is not a durability test of PostgreSQL.
  as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg/data" -l "$STATE/pg/log" -w \
    -o "-p $pg_port -k $STATE/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
    start >/dev/null
  wait_for PostgreSQL "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$pg_port"

  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
  wait_for Redis redis-cli -p "$redis_port" ping

  nohup target/pytools/bin/moto_server -H 127.0.0.1 -p "$s3_port" >"$STATE/moto.log" 2>&1 &
  echo $! >"$STATE/moto.pid"
  wait_for "the S3 server" curl -sf "http://127.0.0.1:$s3_port/moto-api/"
  curl -sf -X PUT "http://127.0.0.1:$s3_port/idlegrid-test" >/dev/null

  {
    echo "export IDLEGRID_TEST_POSTGRES=postgres://postgres@127.0.0.1:$pg_port/postgres"
    echo "export IDLEGRID_TEST_REDIS=redis://127.0.0.1:$redis_port"
    echo "export IDLEGRID_TEST_S3='s3://idlegrid-test?endpoint=http://127.0.0.1:$s3_port'"
    # moto accepts any credentials; object_store wants some.
    echo "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"
  } | tee "$STATE/env"
  say "PostgreSQL on $pg_port, Redis on $redis_port, S3 on $s3_port (state in $STATE)"
}

stop_quietly() {
  [ -d "$STATE" ] || return 0
  if [ -f "$STATE/pg/data/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  for pidfile in "$STATE/redis.pid" "$STATE/moto.pid"; do
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
    fi
  done
  rm -rf "$STATE"
}

case "${1:-}" in
  start) start ;;
  stop) stop_quietly && say "stopped" ;;
  *)
    echo "usage: scripts/services.sh start|stop" >&2
    exit 2
    ;;
esac
