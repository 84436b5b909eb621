#!/usr/bin/env bash
# Starts or stops moto's S3/DynamoDB-compatible server on 127.0.0.1 for the integration
# tests. `start` prints `export` lines for the tests' environment; `stop` kills the server by
# the PID it recorded (never anything else).
#   eval "$(bash .ci/moto.sh start)"; ...; bash .ci/moto.sh stop
set -euo pipefail
VENV="${VENV:-/var/tmp/strata-venv}"
PORT="${STRATA_MOTO_PORT:-5731}"
STATE="${TMPDIR:-/tmp}/strata-moto-$PORT"
case "${1:-}" in
start)
    if [ ! -x "$VENV/bin/moto_server" ]; then
        echo "echo 'moto server not installed in $VENV (make venv); S3/DynamoDB tests will skip' >&2"
        exit 0
    fi
    if [ -f "$STATE.pid" ] && kill -0 "$(cat "$STATE.pid")" 2>/dev/null; then
        :
    else
        "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$STATE.log" 2>&1 &
        echo $! >"$STATE.pid"
        for _ in $(seq 1 100); do
            if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/')" 2>/dev/null; then
                break
            fi
            sleep 0.1
        done
    fi
    echo "export STRATA_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT"
    echo "export STRATA_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:$PORT"
    ;;
stop)
    if [ -f "$STATE.pid" ]; then
        kill "$(cat "$STATE.pid")" 2>/dev/null || true
        rm -f "$STATE.pid"
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
