#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the PostgreSQL store's tests (issue 17), run as an unprivileged user on a
# local port, everything inside one folder.
#
#   scripts/pg_server.sh start DIR   install PostgreSQL from Debian's packages if absent (as root), initdb in
#                                    DIR, start it on 127.0.0.1, create the database `yolo_lab_test`, write its
#                                    URL to DIR/url and print it
#   scripts/pg_server.sh restart DIR stop the cluster (fast: open connections are closed) and start it again on
#                                    the same port (the PostgreSQL store's reconnect test)
#   scripts/pg_server.sh stop DIR    stop the cluster and remove DIR
#
# The superuser `yolo` has the password `yolo-test` (scram-sha-256 over TCP), so a wrong password is testable.
set -euo pipefail
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|restart|stop DIR" >&2; exit 2; }

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# the cluster's owner: never root (initdb refuses it)
owner() {
  if [ "$(id -u)" != 0 ]; then id -un; elif id postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$(owner)" -- "$@"; else "$@"; fi
}

# start the cluster in $2 on port $3 and wait until it accepts connections
serve() {
  as_owner "$1/pg_ctl" -D "$2/data" -l "$2/server.log" -w -t 60 \
    -o "-p $3 -k $2 -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" start >/dev/null ||
    { cat "$2/server.log" >&2; exit 1; }
}

case "$cmd" in
start)
  bin=$(bindir || true)
  if [ -z "$bin" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "pg_server: installing PostgreSQL from Debian's packages" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
      bin=$(bindir || true)
    fi
    [ -n "$bin" ] || { echo "pg_server: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" = 0 ] && chown "$(owner)" "$dir"
  pw="$dir/.pw"
  echo "yolo-test" >"$pw"
  [ "$(id -u)" = 0 ] && chown "$(owner)" "$pw"
  as_owner "$bin/initdb" -D "$dir/data" -U yolo --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # a free port: ask the kernel for one
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  serve "$bin" "$dir" "$port"
  as_owner "$bin/createdb" -h "$dir" -p "$port" -U yolo yolo_lab_test
  url="postgres://yolo:yolo-test@127.0.0.1:$port/yolo_lab_test"
  echo "$url" >"$dir/url"
  echo "$port" >"$dir/port"
  echo "$url"
  ;;
restart)
  bin=$(bindir) || { echo "pg_server: no PostgreSQL server binaries" >&2; exit 1; }
  dir=$(cd "$dir" && pwd)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  serve "$bin" "$dir" "$(cat "$dir/port")"
  ;;
stop)
  bin=$(bindir || true)
  if [ -n "$bin" ] && [ -d "$dir/data" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|restart|stop DIR" >&2
  exit 2
  ;;
esac
