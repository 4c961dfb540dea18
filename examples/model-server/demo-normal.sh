#!/bin/sh
# Starts the example model server, sends it normal requests, and stops it.
# The server and its requests are what `vigil trace` (and later `vigil learn`) watch.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${PORT:-18080}
/usr/bin/python3 -B "$here/server.py" --models "$here/models" --port "$port" &
server=$!
/usr/bin/python3 -B "$here/client.py" "$port" "${REQUESTS:-5}" >/dev/null
kill "$server"
wait "$server" 2>/dev/null || true
