#!/bin/sh
# The model scenes of Vigil's demo. The example server, started with --download, runs its
# downloader at start to fetch its weights from a local "model registry" (an HTTP server),
# verifies nothing, then serves.
#   1. learn one run under normal requests: the download is its startup, predictions its serving;
#   2. monitor replica A and, beside it, replica B: normal requests on both (no anomaly);
#   3. on replica A:
#      a. another process swaps the weights on disk and the server reloads them: model-changed;
#      b. a shell run through the unsafe handler cats the weights: model-artifact-read;
#      c. the server's own downloader is run again, after startup: startup-only-behaviour;
#   4. replica A restarted: it downloads, loads the same weights and serves (no anomaly).
# Prints what the monitors reported (JSON lines, replica A's then B's then the restart's); each
# replica's lines are also in /tmp/vigil-demo-models/replica-{a,b,restart}.jsonl.
# Usage: demo-models.sh [VIGIL]   (run as root)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
vigil=${1:-vigil}
port=${PORT:-18080}
registry_port=$((port + 10))
work=/tmp/vigil-demo-models # fixed, so the paths it learns are the paths it monitors
rm -rf "$work"
mkdir -p "$work/models" "$work/profiles" "$work/registry"
cp "$here/models/weights.json" "$work/registry/"
python=/usr/bin/python3

"$python" -m http.server "$registry_port" --bind 127.0.0.1 --directory "$work/registry" >/dev/null 2>&1 &
registry=$!
# On the way out (a failed step too): stop the registry and any vigil still running.
started=$registry
trap 'for pid in $started; do kill -TERM "$pid" 2>/dev/null || true; done' EXIT

server() { # PORT
    echo "$python -B $here/server.py --models $work/models --port $1 --cache $work/cache --download http://127.0.0.1:$registry_port/weights.json"
}
stop() { # PID of a vigil process whose command is the server
    kill -TERM "$1"
    wait "$1" || true
}
anomalies() { # FILE
    grep -c '"kind":"anomaly"' "$1" || true
}
exploit() { # PORT CODE: Python run by the server through its unsafe handler
    "$python" -B "$here/exploit.py" "$1" "$2"
}

# A kernel that refuses the programs is said here, in vigil's words, before any server starts.
"$vigil" check-kernel >&2 || exit 1

echo "== 1. learning the downloading model server (normal requests)" >&2
# shellcheck disable=SC2046
"$vigil" learn --workload model-server-dl --profiles "$work/profiles" --model-path "$work/models/**" -- $(server "$port") >/dev/null &
learner=$!
started="$started $learner"
"$python" -B "$here/client.py" "$port" 20 >/dev/null
stop "$learner"
"$vigil" profile promote model-server-dl --profiles "$work/profiles"

echo "== 2. monitoring replica A and replica B: normal requests" >&2
# shellcheck disable=SC2046
"$vigil" monitor --workload model-server-dl --profiles "$work/profiles" -- $(server "$port") > "$work/replica-a.jsonl" &
replica_a=$!
started="$started $replica_a"
"$python" -B "$here/client.py" "$port" 10 >/dev/null
# shellcheck disable=SC2046
"$vigil" monitor --workload model-server-dl --profiles "$work/profiles" -- $(server $((port + 1))) > "$work/replica-b.jsonl" &
replica_b=$!
started="$started $replica_b"
"$python" -B "$here/client.py" $((port + 1)) 10 >/dev/null
"$python" -B "$here/client.py" "$port" 5 >/dev/null
sleep 1.5 # a tick: model files are judged once hashed, syscalls once a second
stop "$replica_b"
echo "   (normal requests done: $(anomalies "$work/replica-a.jsonl") anomalies on A, $(anomalies "$work/replica-b.jsonl") on B)" >&2

echo "== 3a. another process swaps the weights on disk; replica A reloads them" >&2
echo '[9.0, 9.0, 9.0]' > "$work/swapped.json"
mv "$work/swapped.json" "$work/models/weights.json"
"$python" -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:$port/reload', data=b''), timeout=5)"
echo "== 3b. a shell, run through the unsafe handler, reads the weights" >&2
exploit "$port" "import subprocess; subprocess.run(['/bin/sh', '-c', 'cat $work/models/weights.json > /dev/null'])"
echo "== 3c. the server's downloader, run again after startup" >&2
exploit "$port" "import subprocess, sys; subprocess.run([sys.executable, '-B', '$here/download.py', 'http://127.0.0.1:$registry_port/weights.json', '$work/models/weights.json'])"
"$python" -B "$here/client.py" "$port" 5 >/dev/null
sleep 1.5
stop "$replica_a"

echo "== 4. replica A restarted: it downloads, loads and serves again" >&2
# shellcheck disable=SC2046
"$vigil" monitor --workload model-server-dl --profiles "$work/profiles" -- $(server "$port") > "$work/replica-restart.jsonl" &
restarted=$!
started="$started $restarted"
"$python" -B "$here/client.py" "$port" 10 >/dev/null
sleep 1.5
stop "$restarted"

echo "== what vigil monitor reported (replica A, B, then A restarted):" >&2
cat "$work/replica-a.jsonl" "$work/replica-b.jsonl" "$work/replica-restart.jsonl"
echo "== profile (see startupOnly): $work/profiles/model-server-dl/v1.yaml" >&2
