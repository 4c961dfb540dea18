#!/usr/bin/env python3
"""A small model server, the kind of workload Vigil watches: it loads its weights from a models
folder at start, then answers predictions over HTTP. The "model" is a linear scorer whose
weights are a JSON list of floats; it is enough to show the file, exec and network behaviour
of a real server without any ML dependency.

    server.py --models DIR [--port 8080] [--cache DIR] [--download URL]
    GET  /healthz            -> ok
    POST /predict {"x": [..]} -> {"score": float}
    POST /reload             -> reads the weights again (after an update on disk)
    SIGTERM                   -> finishes serving, exits 0

With --download, it first runs its downloader (download.py) to fetch the weights from a model
registry into the models folder, verifying nothing, as many servers do at start.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load_weights(models_dir):
    with open(os.path.join(models_dir, "weights.json")) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--cache", default="/tmp/model-server-cache")
    parser.add_argument("--download", help="fetch weights.json from this URL before loading it")
    args = parser.parse_args()

    if args.download:
        downloader = os.path.join(os.path.dirname(os.path.abspath(__file__)), "download.py")
        subprocess.run([sys.executable, "-B", downloader, args.download, os.path.join(args.models, "weights.json")], check=True)
    weights = load_weights(args.models)
    os.makedirs(args.cache, exist_ok=True)
    requests = {"count": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                self.reply(200, "ok")
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            if self.path == "/reload":
                weights[:] = load_weights(args.models)
                self.reply(200, "reloaded")
                return
            if self.path != "/predict":
                self.reply(404, {"error": "not found"})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            # DELIBERATELY VULNERABLE, for the demo: like an unsafe pickle load, a request can make
            # the server run code it sent. This is the hole the demo's attacker goes through.
            if "__reduce__" in body:
                exec(body["__reduce__"])
            x = body.get("x", [])
            score = sum(w * v for w, v in zip(weights, x))
            requests["count"] += 1
            # Like many servers, keep a small on-disk record of recent work (rewritten in place).
            with open(os.path.join(args.cache, "last-request.json"), "w") as f:
                json.dump({"n": requests["count"], "score": score}, f)
            self.reply(200, {"score": score})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    # Like production servers, finish in-flight requests and exit 0 when Kubernetes stops the
    # pod (SIGTERM): shutdown() waits for serve_forever(), so it runs on a thread of its own.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"serving on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    print("stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
