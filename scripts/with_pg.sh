#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server for the PostgreSQL store's tests (issue 17):
#   scripts/with_pg.sh cargo test --all-targets
# starts one with scripts/pg_server.sh, exports YOLO_LAB_TEST_PG (its URL) and YOLO_LAB_TEST_PG_DIR (its folder,
# for the restart test), runs the command and stops the server whatever the command's outcome. In CI (CI=true)
# a server that cannot start is a failure; elsewhere the command runs without one and those tests say SKIPPED.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/yolo-lab-pg.XXXXXX)
if url=$("$here/pg_server.sh" start "$dir"); then
  trap '"$here/pg_server.sh" stop "$dir"' EXIT
  export YOLO_LAB_TEST_PG="$url" YOLO_LAB_TEST_PG_DIR="$dir"
  echo "with_pg: PostgreSQL test server at ${url/:yolo-test@/:***@}" >&2
else
  rm -rf "$dir"
  if [ "${CI:-}" = true ]; then
    echo "with_pg: could not start a PostgreSQL server, which CI requires" >&2
    exit 1
  fi
  echo "with_pg: WARNING could not start a PostgreSQL server: the PostgreSQL store's tests will be SKIPPED" >&2
fi
"$@"
