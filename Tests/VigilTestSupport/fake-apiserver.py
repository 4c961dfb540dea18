#!/usr/bin/env python3
"""A stand-in Kubernetes API server for the tests: HTTPS with a test CA, a bearer token checked
against the token file at each request (so a test can rotate it), and what Vigil uses of the API:

- pods: GET /api/v1/namespaces/NS/pods/NAME from DIR/NS/NAME.json; 403 for every request when
  DIR/forbidden exists; a plain 404 for everything, like a proxy, when DIR/proxy exists;
- WorkloadProfile custom resources (vigil.dev/v1alpha1, namespaced, no status subresource) held
  in memory with the API server's semantics for what Vigil relies on: create (201; 409
  AlreadyExists), get (404 NotFound), list per namespace and across namespaces, update with
  optimistic concurrency (metadata.resourceVersion required: 422 Invalid without it, 409 Conflict
  when stale), delete; resourceVersion from one counter across the server, uid and
  creationTimestamp set at create, generation bumped when the spec changes; lists of metadata
  only (Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1); a request body over
  3 MiB is 413 RequestEntityTooLarge (the API server's own limit) and an object over 1.5 MiB is
  refused by etcd (500 "etcdserver: request is too large");
- watches (?watch=1) as the API server's watch cache serves them: newline-delimited JSON events
  in a chunked 200 response from a resourceVersion ("0" or none: the current objects as ADDED
  first), a labelSelector of key=value terms with the cache's semantics (an object that starts
  matching is ADDED, one that stops matching is DELETED), metadata-only objects when asked,
  BOOKMARK events when allowWatchBookmarks=true (every second here; about every minute in a real
  cluster), the end at timeoutSeconds, and a resourceVersion older than the retained history
  answered by one ERROR event (a Status 410 Expired "too old resource version") — history is
  the last 200 changes, and DIR/compact drops it all (a compaction) at the next watch request.

Each request line is appended to DIR/requests.log."""
import datetime
import http.server
import json
import os
import re
import ssl
import sys
import threading
import urllib.parse
import uuid

cert, key, pods, token_file, port_file = sys.argv[1:6]
POD = re.compile(r"^/api/v1/namespaces/([a-z0-9.-]+)/pods/([a-z0-9.-]+)$")
GROUP, VERSION, PLURAL, KIND = "vigil.dev", "v1alpha1", "workloadprofiles", "WorkloadProfile"
PROFILES = re.compile(rf"^/apis/{GROUP}/{VERSION}(?:/namespaces/([a-z0-9-]+))?/{PLURAL}(?:/([a-z0-9.-]+))?/?(?:\?.*)?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_REQUEST_BYTES = 3 * 1024 * 1024
MAX_OBJECT_BYTES = 1536 * 1024

lock = threading.Condition()
objects = {}  # (namespace, name) -> object
counter = [1000]
HISTORY = 200
history = []  # (resourceVersion, object before or None, object after or None), oldest first
compacted = [0]  # the newest resourceVersion no longer in history
BOOKMARK_SECONDS = 1.0


def record(version, old, new):
    history.append((int(version), old, new))
    if len(history) > HISTORY:
        compacted[0] = history.pop(0)[0]
    lock.notify_all()


def status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return code, body


def not_found(name):
    return status(404, "NotFound", f'{PLURAL}.{GROUP} "{name}" not found',
                  {"name": name, "group": GROUP, "kind": PLURAL})


def next_version():
    counter[0] += 1
    return str(counter[0])


def store(namespace, name, obj):
    if len(json.dumps(obj, separators=(",", ":"))) > MAX_OBJECT_BYTES:
        return status(500, "", "etcdserver: request is too large")
    record(obj["metadata"]["resourceVersion"], objects.get((namespace, name)), obj)
    objects[(namespace, name)] = obj
    return None


def create(namespace, obj):
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if obj.get("apiVersion") != f"{GROUP}/{VERSION}" or obj.get("kind") != KIND:
        return status(400, "BadRequest", f"the API version in the data ({obj.get('apiVersion')}) or kind does not match")
    if meta.get("namespace", namespace) != namespace:
        return status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        return status(422, "Invalid", f'{KIND}.{GROUP} "{name}" is invalid: metadata.name: Invalid value: "{name}": '
                      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'")
    if (namespace, name) in objects:
        return status(409, "AlreadyExists", f'{PLURAL}.{GROUP} "{name}" already exists',
                      {"name": name, "group": GROUP, "kind": PLURAL})
    meta = dict(meta, namespace=namespace, uid=str(uuid.uuid4()), resourceVersion=next_version(), generation=1,
                creationTimestamp=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    obj = dict(obj, metadata=meta)
    return store(namespace, name, obj) or (201, obj)


def update(namespace, name, obj):
    current = objects.get((namespace, name))
    if current is None:
        return not_found(name)
    meta = obj.get("metadata") or {}
    if meta.get("name") != name:
        return status(400, "BadRequest", "the name of the object does not match the name on the URL")
    version = meta.get("resourceVersion")
    if not version:
        return status(422, "Invalid", f'{KIND}.{GROUP} "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
                      "must be specified for an update")
    if version != current["metadata"]["resourceVersion"]:
        return status(409, "Conflict", f'Operation cannot be fulfilled on {PLURAL}.{GROUP} "{name}": the object has been '
                      "modified; please apply your changes to the latest version and try again",
                      {"name": name, "group": GROUP, "kind": PLURAL})
    kept = {k: current["metadata"][k] for k in ("uid", "creationTimestamp", "namespace", "generation")}
    if obj.get("spec") != current.get("spec"):
        kept["generation"] += 1
    obj = dict(obj, metadata=dict(meta, **kept, resourceVersion=next_version()))
    return store(namespace, name, obj) or (200, obj)


def profiles(method, namespace, name, body, accept):
    with lock:
        if method == "GET" and name:
            obj = objects.get((namespace, name))
            return (200, obj) if obj else not_found(name)
        if method == "GET":
            items = [o for (ns, _), o in sorted(objects.items()) if namespace is None or ns == namespace]
            if "as=PartialObjectMetadataList" in accept:
                return 200, {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                             "metadata": {"resourceVersion": str(counter[0])},
                             "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                        "metadata": o["metadata"]} for o in items]}
            return 200, {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND + "List",
                         "metadata": {"resourceVersion": str(counter[0])}, "items": items}
        if namespace is None:
            return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        try:
            obj = json.loads(body) if body else None
        except ValueError as error:
            return status(400, "BadRequest", f"the body of the request could not be decoded: {error}")
        if method == "POST" and not name:
            return create(namespace, obj or {})
        if method == "PUT" and name:
            return update(namespace, name, obj or {})
        if method == "DELETE" and name:
            obj = objects.pop((namespace, name), None)
            if obj is None:
                return not_found(name)
            record(next_version(), obj, None)
            return 200, obj
        return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def selector_matches(selector, obj):
    labels = (obj or {}).get("metadata", {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return obj is not None


def watch_event(kind, obj, metadata_only, version=None):
    meta = dict(obj["metadata"])
    if version is not None:
        meta["resourceVersion"] = str(version)
    if metadata_only:
        obj = {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": meta}
    else:
        obj = dict(obj, metadata=meta)
    return {"type": kind, "object": obj}


def watch(handler, namespace, query, metadata_only):
    """Streams events until timeoutSeconds, a write to the client fails, or the version expires."""
    import time
    selector = query.get("labelSelector", [""])[0]
    bookmarks = query.get("allowWatchBookmarks", ["false"])[0] == "true"
    deadline = time.monotonic() + float(query.get("timeoutSeconds", ["1800"])[0])
    requested = query.get("resourceVersion", [""])[0]
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()

    def send(event):
        data = (json.dumps(event) + "\n").encode()
        handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        handler.wfile.flush()

    def in_namespace(obj):
        return namespace is None or obj["metadata"]["namespace"] == namespace

    with lock:
        if os.path.exists(os.path.join(pods, "compact")):
            os.remove(os.path.join(pods, "compact"))
            history.clear()
            compacted[0] = counter[0]
        if requested in ("", "0"):
            initial = [o for o in objects.values() if in_namespace(o) and selector_matches(selector, o)]
            position = counter[0]
        else:
            initial, position = [], int(requested)
    try:
        for obj in initial:
            send(watch_event("ADDED", obj, metadata_only))
        last_sent = time.monotonic()
        while time.monotonic() < deadline:
            with lock:
                if position < compacted[0]:
                    expired = position
                    events = None
                else:
                    events = [e for e in history if e[0] > position]
                    if not events:
                        lock.wait(timeout=min(BOOKMARK_SECONDS, max(0.0, deadline - time.monotonic())))
                        events = [e for e in history if e[0] > position]
                current = counter[0]
            if events is None:
                send({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                                  "message": f"too old resource version: {expired} ({compacted[0] + 1})",
                                                  "reason": "Expired", "code": 410}})
                break
            for version, old, new in events:
                position = version
                before = old is not None and in_namespace(old) and selector_matches(selector, old)
                after = new is not None and in_namespace(new) and selector_matches(selector, new)
                if before and after:
                    send(watch_event("MODIFIED", new, metadata_only))
                elif after:
                    send(watch_event("ADDED", new, metadata_only))
                elif before:
                    send(watch_event("DELETED", new or old, metadata_only, version))
                else:
                    continue
                last_sent = time.monotonic()
            if bookmarks and time.monotonic() - last_sent >= BOOKMARK_SECONDS:
                position = max(position, current)
                send({"type": "BOOKMARK", "object": {"apiVersion": "meta.k8s.io/v1" if metadata_only else f"{GROUP}/{VERSION}",
                                                     "kind": "PartialObjectMetadata" if metadata_only else KIND,
                                                     "metadata": {"resourceVersion": str(position)}}})
                last_sent = time.monotonic()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        handler.close_connection = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        with open(os.path.join(pods, "requests.log"), "a") as log:
            log.write(f"{self.command} {self.path} {self.headers.get('Authorization', '-')}\n")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            return self.reply(*status(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_REQUEST_BYTES}"))
        body = self.rfile.read(length) if length else b""
        with open(token_file) as f:
            expected = "Bearer " + f.read().strip()
        if self.headers.get("Authorization") != expected:
            return self.reply(401, '{"kind":"Status","code":401,"reason":"Unauthorized"}')
        if os.path.exists(os.path.join(pods, "proxy")):
            return self.reply(404, "404 page not found")
        if os.path.exists(os.path.join(pods, "forbidden")):
            return self.reply(403, '{"kind":"Status","code":403,"reason":"Forbidden"}')
        match = PROFILES.match(self.path)
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if match and self.command == "GET" and not match.group(2) and query.get("watch", [""])[0] in ("1", "true"):
            return watch(self, match.group(1), query, "as=PartialObjectMetadata" in self.headers.get("Accept", ""))
        if match:
            return self.reply(*profiles(self.command, match.group(1), match.group(2), body, self.headers.get("Accept", "")))
        match = POD.match(self.path)
        if not match or self.command != "GET":
            return self.reply(404, '{"kind":"Status","code":404}')
        file = os.path.join(pods, match.group(1), match.group(2) + ".json")
        if not os.path.exists(file):
            return self.reply(404, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                              f'"message":"pods \\"{match.group(2)}\\" not found","reason":"NotFound",'
                              f'"details":{{"name":"{match.group(2)}","kind":"pods"}},"code":404}}')
        with open(file) as f:
            self.reply(200, f.read())

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

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
