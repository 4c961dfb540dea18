#!/usr/bin/env python3
"""A stand-in Kubernetes API server for the tests: HTTPS with a test CA, serves
GET /api/v1/namespaces/NS/pods/NAME from DIR/NS/NAME.json, checks the bearer token
against the token file at each request (so a test can rotate it), answers 403 for
every pod when DIR/forbidden exists, answers like a proxy (a plain 404 for everything) when
DIR/proxy exists, and appends each request line to DIR/requests.log."""
import http.server
import os
import re
import ssl
import sys

cert, key, pods, token_file, port_file = sys.argv[1:6]
PATH = re.compile(r"^/api/v1/namespaces/([a-z0-9.-]+)/pods/([a-z0-9.-]+)$")


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with open(os.path.join(pods, "requests.log"), "a") as log:
            log.write(f"{self.command} {self.path} {self.headers.get('Authorization', '-')}\n")
        with open(token_file) as f:
            expected = "Bearer " + f.read().strip()
        if self.headers.get("Authorization") != expected:
            return self.reply(401, '{"kind":"Status","code":401,"reason":"Unauthorized"}')
        if os.path.exists(os.path.join(pods, "proxy")):
            return self.reply(404, "404 page not found")
        if os.path.exists(os.path.join(pods, "forbidden")):
            return self.reply(403, '{"kind":"Status","code":403,"reason":"Forbidden"}')
        match = PATH.match(self.path)
        if not match:
            return self.reply(404, '{"kind":"Status","code":404}')
        file = os.path.join(pods, match.group(1), match.group(2) + ".json")
        if not os.path.exists(file):
            return self.reply(404, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                              f'"message":"pods \\"{match.group(2)}\\" not found","reason":"NotFound",'
                              f'"details":{{"name":"{match.group(2)}","kind":"pods"}},"code":404}}')
        with open(file) as f:
            self.reply(200, f.read())

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
