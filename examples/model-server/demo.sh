#!/bin/sh
# Vigil's main job, end to end, on the example model server:
#   1. learn: run the server under `vigil learn` while a client sends normal requests;
#   2. monitor: run it again under `vigil monitor`; send normal requests (no anomaly expected),
#      then the attack (attack.py), then normal requests again;
#   3. protect: the same attack under `vigil monitor --protect`: the shell is killed before it
#      runs, the connection is refused, the weights are intact, and the anomalies say so;
#   4. seccomp: the server under the seccomp profile generated from what it learned.
# Prints the anomalies vigil reported. Usage: demo.sh [VIGIL]   (run as root)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
vigil=${1:-vigil}
port=${PORT:-18080}
work=/tmp/vigil-demo # fixed, so the paths it learns are the paths it monitors
rm -rf "$work"
mkdir -p "$work/models" "$work/profiles"
cp "$here/models/weights.json" "$work/models/"
server="/usr/bin/python3 -B $here/server.py --models $work/models --port $port --cache $work/cache"

wait_for_exit() { # PID: the vigil process; its command is the server
    kill -TERM "$1"
    wait "$1" || true
}
# If a step fails, stop the vigil processes still running (they hold the caller's output open).
started=""
trap 'for pid in $started; do kill -TERM "$pid" 2>/dev/null || true; done' EXIT

# A kernel that refuses the programs is said here, in vigil's words, before any server starts.
"$vigil" check-kernel >&2 || exit 1

echo "== 1. learning the model server's behaviour (normal requests)" >&2
# shellcheck disable=SC2086
# Learning lasts as long as the server runs (the default --min-duration is an hour); it is ended
# by hand afterwards, as after a learning run in a staging environment.
"$vigil" learn --workload model-server --profiles "$work/profiles" --model-path "$work/models/**" -- $server &
learner=$!
started="$started $learner"
/usr/bin/python3 -B "$here/client.py" "$port" 20 >/dev/null
wait_for_exit "$learner"
"$vigil" profile promote model-server --profiles "$work/profiles"

echo "== 2. monitoring: normal requests, then the attack, then normal requests" >&2
# shellcheck disable=SC2086
"$vigil" monitor --workload model-server --profiles "$work/profiles" -- $server > "$work/anomalies.jsonl" &
monitor=$!
started="$started $monitor"
/usr/bin/python3 -B "$here/client.py" "$port" 10 >/dev/null
echo "   (normal requests done: $(wc -l < "$work/anomalies.jsonl") anomalies so far)" >&2
/usr/bin/python3 -B "$here/attack.py" "$port" "$work/models"
/usr/bin/python3 -B "$here/client.py" "$port" 10 >/dev/null
sleep 1.5 # one more tick: syscalls are read from the kernel's bitmap once a second
wait_for_exit "$monitor"

echo "== anomalies reported by vigil monitor ($work/anomalies.jsonl):" >&2
cat "$work/anomalies.jsonl"
echo "== profile: $work/profiles/model-server/v1.yaml" >&2

echo "== 3. protect: the same attack under vigil monitor --protect" >&2
cp "$here/models/weights.json" "$work/models/"
# shellcheck disable=SC2086
"$vigil" monitor --protect --workload model-server --profiles "$work/profiles" -- $server > "$work/protect.jsonl" &
protector=$!
started="$started $protector"
/usr/bin/python3 -B "$here/client.py" "$port" 10 >/dev/null
/usr/bin/python3 -B "$here/attack.py" "$port" "$work/models"
if /usr/bin/python3 -B "$here/client.py" "$port" 5 >/dev/null; then
    echo "   normal requests before and after the attack: answered" >&2
else
    echo "   normal requests: FAILED under protect mode" >&2
fi
sleep 1.5
wait_for_exit "$protector"
if cmp -s "$here/models/weights.json" "$work/models/weights.json"; then
    echo "   attack: the shell was killed before it ran (the weights are intact), the connection refused:" >&2
else
    echo "   attack: the weights were overwritten" >&2
fi
grep '"action"' "$work/protect.jsonl" >&2 || echo "   (no anomaly says what protect mode did)" >&2

echo "== 4. seccomp: the server under the profile generated from what it called while learning" >&2
"$vigil" seccomp export --workload model-server --profiles "$work/profiles" --out "$work/model-server.seccomp.json"
cp "$here/models/weights.json" "$work/models/"
# shellcheck disable=SC2086
"$vigil" seccomp run --profile "$work/model-server.seccomp.json" -- $server 2>"$work/confined-server.log" &
confined=$!
started="$started $confined"
if /usr/bin/python3 -B "$here/client.py" "$port" 5 >/dev/null; then
    echo "   normal requests: answered under the profile" >&2
else
    echo "   normal requests: FAILED under the profile" >&2
fi
/usr/bin/python3 -B "$here/attack.py" "$port" "$work/models" 2>/dev/null || true
if cmp -s "$here/models/weights.json" "$work/models/weights.json"; then
    echo "   attack: refused by the kernel (the shell could not be spawned; the weights are intact;" >&2
    echo "   the server's log says why: $(grep -m1 -o 'PermissionError.*' "$work/confined-server.log"))" >&2
else
    echo "   attack: the weights were overwritten" >&2
fi
kill -TERM "$confined"; wait "$confined" 2>/dev/null || true
