#!/usr/bin/env python3
"""A CRI client for Vigil's tests: drives containerd's CRI plugin over gRPC as a kubelet does.

    cri.py --socket /run/.../containerd.sock

Reads one JSON request per line on stdin:
    {"service": "RuntimeService", "method": "RunPodSandbox", "request": {...}, "timeout": 30}
and writes one JSON line per request on stdout:
    {"ok": true, "response": {...}}    or    {"ok": false, "code": "UNKNOWN", "message": "..."}
Requests and responses use the protobuf JSON mapping (lowerCamelCase field names, enums by name).

The Python stubs are generated from runtime_v1_subset.proto (beside this file) into a private
temporary directory at start, with grpcio-tools; nothing generated is kept.
"""
import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile


def generate_stubs(directory):
    from grpc_tools import protoc

    here = os.path.dirname(os.path.abspath(__file__))
    proto = "runtime_v1_subset.proto"
    shutil.copy(os.path.join(here, proto), directory)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{directory}", f"-I{include}", f"--python_out={directory}",
                      f"--grpc_python_out={directory}", os.path.join(directory, proto)])
    if rc != 0:
        raise SystemExit(f"cri.py: protoc failed on {proto} ({rc})")
    sys.path.insert(0, directory)
    return (importlib.import_module("runtime_v1_subset_pb2"), importlib.import_module("runtime_v1_subset_pb2_grpc"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    args = parser.parse_args()

    import grpc
    from google.protobuf import json_format

    directory = tempfile.mkdtemp(prefix="vigil-cri-")
    try:
        messages, services = generate_stubs(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    channel = grpc.insecure_channel(f"unix://{args.socket}")
    stubs = {"RuntimeService": services.RuntimeServiceStub(channel), "ImageService": services.ImageServiceStub(channel)}
    methods = {service.name: service for service in messages.DESCRIPTOR.services_by_name.values()}

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            call = json.loads(line)
            service = methods[call["service"]]
            method = service.methods_by_name[call["method"]]
            request_type = getattr(messages, method.input_type.name)
            request = json_format.ParseDict(call.get("request", {}), request_type())
            response = getattr(stubs[call["service"]], call["method"])(request, timeout=call.get("timeout", 60))
            out = {"ok": True, "response": json_format.MessageToDict(response)}
        except grpc.RpcError as error:
            out = {"ok": False, "code": error.code().name, "message": error.details()}
        except Exception as error:  # a malformed request from the test: say what
            out = {"ok": False, "code": "CLIENT", "message": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
