"""The traffic of the framework tests, as a cluster gives it to a model server: inference over
REST (and gRPC for KServe), the kubelet's health and readiness probes, Prometheus' scrapes, and
for KServe a second model loaded, used and unloaded through the repository API. Prints one
JSON line: what was answered; exits 1 on any answer that is not the expected one.

usage: traffic.py bentoml PORT ROUNDS
       traffic.py kserve HTTP_PORT GRPC_PORT ROUNDS
"""
import http.client
import json
import sys
import time

FLOWERS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]  # a setosa and a virginica: classes 0 and 2


class Client:
    """One keep-alive connection: a repository load and the calls after it reach the same worker."""

    def __init__(self, port):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status != expect:
            raise SystemExit(f"{method} {path}: {response.status} {payload[:300]!r}")
        return payload


def wait_ready(port, path, seconds=300):
    deadline = time.time() + seconds
    while True:
        try:
            Client(port).call("GET", path)
            return
        except (OSError, SystemExit, http.client.HTTPException):
            if time.time() > deadline:
                raise SystemExit(f"not ready on {port}{path} after {seconds} s")
            time.sleep(0.3)


def bentoml_round(client, seen):
    client.call("GET", "/livez")
    client.call("GET", "/readyz")
    seen["predict"] = json.loads(client.call("POST", "/predict", {"input_data": FLOWERS}))
    seen["classify"] = json.loads(client.call("POST", "/classify", dict(zip(
        ["sepal_length", "sepal_width", "petal_length", "petal_width"], FLOWERS[1]))))["class"]
    seen["metrics"] = b"bentoml_service_request_total" in client.call("GET", "/metrics")


def kserve_round(client, grpc_port, seen):
    import numpy
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
    import grpc

    client.call("GET", "/v2/health/live")
    client.call("GET", "/v2/health/ready")
    client.call("GET", "/v1/models/iris")
    seen["v1"] = json.loads(client.call("POST", "/v1/models/iris:predict", {"instances": FLOWERS}))["predictions"]
    tensor = {"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": sum(FLOWERS, [])}
    seen["v2"] = json.loads(client.call("POST", "/v2/models/iris/infer", {"inputs": [tensor]}))["outputs"][0]["data"]
    seen["metrics"] = b"request_predict_seconds" in client.call("GET", "/metrics")
    # The repository API: a second model loaded, used and unloaded (on this connection's worker).
    client.call("POST", "/v2/repository/models/iris-b/load")
    seen["loaded"] = json.loads(client.call("POST", "/v1/models/iris-b:predict", {"instances": FLOWERS}))["predictions"]
    client.call("POST", "/v2/repository/models/iris-b/unload")
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        assert stub.ModelReady(pb.ModelReadyRequest(name="iris"), timeout=10).ready
        request = pb.ModelInferRequest(model_name="iris", inputs=[pb.ModelInferRequest.InferInputTensor(
            name="input-0", datatype="FP32", shape=[2, 4], contents=pb.InferTensorContents(fp32_contents=sum(FLOWERS, [])))])
        reply = stub.ModelInfer(request, timeout=10)
        seen["grpc"] = (numpy.frombuffer(reply.raw_output_contents[0], dtype="<i8").tolist() if reply.raw_output_contents
                        else list(reply.outputs[0].contents.int64_contents))


def main():
    framework = sys.argv[1]
    seen = {}
    if framework == "bentoml":
        port, rounds = int(sys.argv[2]), int(sys.argv[3])
        wait_ready(port, "/readyz")
        for _ in range(rounds):
            bentoml_round(Client(port), seen)
    elif framework == "kserve":
        port, grpc_port, rounds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        wait_ready(port, "/v2/models/iris/ready")
        for _ in range(rounds):
            kserve_round(Client(port), grpc_port, seen)
    else:
        raise SystemExit(f"unknown framework {framework}")
    print(json.dumps(seen, sort_keys=True))


if __name__ == "__main__":
    main()
