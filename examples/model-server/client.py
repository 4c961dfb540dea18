#!/usr/bin/env python3
"""Sends normal prediction requests to the example server: client.py PORT [COUNT]."""
import json
import sys
import time
import urllib.request

port = int(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else 5
base = f"http://127.0.0.1:{port}"
for _ in range(600):  # up to 30 s: under vigil, the server starts after the BPF programs load
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1).read()
        break
    except OSError:
        time.sleep(0.05)
for i in range(count):
    req = urllib.request.Request(base + "/predict", data=json.dumps({"x": [i, 1, 2]}).encode(),
                                 headers={"Content-Type": "application/json"})
    print(urllib.request.urlopen(req, timeout=5).read().decode())
