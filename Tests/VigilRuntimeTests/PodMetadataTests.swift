import Foundation
import VigilRuntime
import XCTest

final class PodMetadataTests: XCTestCase {
    /// A pod as `kubectl get pod -o json` prints it (trimmed to what matters, fields kept real).
    private let deploymentPod = """
    {"apiVersion":"v1","kind":"Pod","metadata":{"creationTimestamp":"2026-11-20T08:12:44Z",
     "generateName":"llm-server-7d9c8f6b5-","labels":{"app":"llm-server","pod-template-hash":"7d9c8f6b5","tier":"gpu"},
     "name":"llm-server-7d9c8f6b5-x2k4p","namespace":"ml",
     "ownerReferences":[{"apiVersion":"apps/v1","blockOwnerDeletion":true,"controller":true,"kind":"ReplicaSet",
       "name":"llm-server-7d9c8f6b5","uid":"0b5d3c1e-8a0f-4c8e-9f7e-2b1a3c4d5e6f"}],
     "resourceVersion":"918273","uid":"5f2e9a7c-3b1d-4e8f-a6c2-9d0b7e1f4a35"},
     "spec":{"containers":[{"image":"registry/llm:1.4","name":"server"}],"nodeName":"node-a"},
     "status":{"phase":"Running","qosClass":"Burstable"}}
    """

    func testOwnerAndLabelsFromThePodObject() throws {
        let pod = try PodMetadata(podJSON: Data(deploymentPod.utf8))
        XCTAssertEqual(pod.uid, "5f2e9a7c-3b1d-4e8f-a6c2-9d0b7e1f4a35")
        XCTAssertEqual(pod.namespace, "ml")
        XCTAssertEqual(pod.labels, ["app": "llm-server", "pod-template-hash": "7d9c8f6b5", "tier": "gpu"])
        XCTAssertEqual(pod.owner, .init(kind: "deployment", name: "llm-server"))
        XCTAssertEqual(pod.modelDigests, [], "no annotation")
        let declared = "sha256:" + String(repeating: "a", count: 64), other = "sha256:" + String(repeating: "b", count: 64)
        let annotated = #"{"metadata":{"uid":"u","namespace":"ml","name":"p","annotations":{"vigil.dev/model-digests":"\#(declared), \#(other),sha256:XYZ md5:1"}}}"#
        XCTAssertEqual(try PodMetadata(podJSON: Data(annotated.utf8)).modelDigests, [declared, other], "what is not a sha256 digest is left out")
        XCTAssertThrowsError(try PodMetadata(podJSON: Data(#"{"kind":"Status"}"#.utf8)))
        XCTAssertThrowsError(try PodMetadata(podJSON: Data(#"{"metadata":{"name":"x"}}"#.utf8)))
    }

    /// Readiness per container, as the kubelet writes it in the pod's status: only a container
    /// that says `ready: true` with its runtime's id (a container waiting to start has none).
    func testReadyContainersAreThoseTheStatusSaysAreReady() throws {
        let json = """
        {"metadata":{"uid":"u","namespace":"ml","name":"p"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"False"}],
         "containerStatuses":[
          {"name":"server","ready":true,"started":true,"containerID":"containerd://4f1a9c","state":{"running":{}}},
          {"name":"warmup","ready":false,"started":true,"containerID":"containerd://77aa01","state":{"running":{}}},
          {"name":"sidecar","ready":true,"containerID":"cri-o://be11e5"},
          {"name":"next","ready":false,"state":{"waiting":{"reason":"ContainerCreating"}}}]}}
        """
        XCTAssertEqual(try PodMetadata(podJSON: Data(json.utf8)).readyContainerIDs, ["4f1a9c", "be11e5"])
        XCTAssertEqual(try PodMetadata(podJSON: Data(deploymentPod.utf8)).readyContainerIDs, [], "no container statuses yet")
    }

    func testAPodAsksForProtectModeWithItsAnnotation() throws {
        func mode(_ value: String) throws -> Bool {
            try PodMetadata(podJSON: Data(#"{"metadata":{"uid":"u","namespace":"ml","name":"p","annotations":{"vigil.dev/mode":"\#(value)"}}}"#.utf8)).protectRequested
        }
        XCTAssertTrue(try mode("protect"))
        XCTAssertFalse(try mode("monitor"))
        XCTAssertFalse(try mode("Protect"), "values are exact, as Kubernetes annotations are")
        XCTAssertFalse(try PodMetadata(podJSON: Data(deploymentPod.utf8)).protectRequested)
    }

    func testControllersNameTheirWorkload() throws {
        func owner(_ references: String, labels: String = "{}") throws -> PodMetadata.Owner {
            let json = #"{"metadata":{"uid":"u","namespace":"ml","name":"p-1","labels":\#(labels),"ownerReferences":\#(references)}}"#
            return try PodMetadata(podJSON: Data(json.utf8)).owner
        }
        XCTAssertEqual(try owner(#"[{"kind":"StatefulSet","name":"vector-db","controller":true}]"#), .init(kind: "statefulset", name: "vector-db"))
        XCTAssertEqual(try owner(#"[{"kind":"DaemonSet","name":"gpu-exporter","controller":true}]"#), .init(kind: "daemonset", name: "gpu-exporter"))
        XCTAssertEqual(try owner(#"[{"kind":"Job","name":"reindex-29412345","controller":true}]"#), .init(kind: "cronjob", name: "reindex"))
        XCTAssertEqual(try owner(#"[{"kind":"Job","name":"finetune-v2","controller":true}]"#), .init(kind: "job", name: "finetune-v2"))
        XCTAssertEqual(try owner(#"[{"kind":"ReplicaSet","name":"canary-llm-6b7f9c4d8","controller":true}]"#,
                                 labels: #"{"rollouts-pod-template-hash":"6b7f9c4d8"}"#), .init(kind: "rollout", name: "canary-llm"))
        // A ReplicaSet without the Deployment's hash label is its own workload.
        XCTAssertEqual(try owner(#"[{"kind":"ReplicaSet","name":"batch-abc12","controller":true}]"#), .init(kind: "replicaset", name: "batch-abc12"))
        // Only the controller counts; a pod without one is its own owner.
        XCTAssertEqual(try owner(#"[{"kind":"ConfigMap","name":"x","controller":false}]"#), .init(kind: "pod", name: "p-1"))
        XCTAssertEqual(try owner("[]"), .init(kind: "pod", name: "p-1"))
    }

    func testTheAPIOwnerReplacesTheNameShape() {
        var identity = PodIdentity(namespace: "ml", pod: "gpu-exporter-x7k2p", container: "exporter", image: nil)
        XCTAssertEqual(identity.workloadKey, "ml/generated/gpu-exporter/exporter")
        identity.owner = .init(kind: "daemonset", name: "gpu-exporter")
        XCTAssertEqual(identity.workloadKey, "ml/daemonset/gpu-exporter/exporter")
    }

    func testLabelSelectorsMatchAsKubernetesDoes() {
        let labels = ["app": "llm", "tier": "gpu"]
        XCTAssertTrue(LabelSelector().matches(labels), "empty selects everything")
        XCTAssertTrue(LabelSelector(matchLabels: ["app": "llm"]).matches(labels))
        XCTAssertFalse(LabelSelector(matchLabels: ["app": "llm", "team": "x"]).matches(labels))
        typealias R = LabelSelector.Requirement
        XCTAssertTrue(LabelSelector(matchExpressions: [R(key: "tier", operator: .in, values: ["gpu", "tpu"])]).matches(labels))
        XCTAssertFalse(LabelSelector(matchExpressions: [R(key: "tier", operator: .notIn, values: ["gpu"])]).matches(labels))
        XCTAssertTrue(LabelSelector(matchExpressions: [R(key: "team", operator: .notIn, values: ["x"])]).matches(labels), "NotIn admits an absent key")
        XCTAssertTrue(LabelSelector(matchExpressions: [R(key: "app", operator: .exists)]).matches(labels))
        XCTAssertFalse(LabelSelector(matchExpressions: [R(key: "app", operator: .doesNotExist)]).matches(labels))
        XCTAssertFalse(LabelSelector(matchLabels: ["app": "llm"], matchExpressions: [R(key: "canary", operator: .exists)]).matches(labels))
        XCTAssertEqual(R(key: "a", operator: .in).problem, "In needs at least one value")
        XCTAssertEqual(R(key: "a", operator: .exists, values: ["x"]).problem, "Exists takes no values")
    }
}

final class CachedPodMetadataSourceTests: XCTestCase {
    private final class CountingSource: PodMetadataSource {
        var lookups: [String] = []
        var failing = false
        func pod(namespace: String, name: String, uid: String) throws -> PodMetadata? {
            lookups.append(uid)
            if failing { throw PodMetadataError.malformed("down") }
            return name == "gone" ? nil : PodMetadata(uid: uid, namespace: namespace, name: name)
        }
    }

    func testOneLookupServesAPodsContainersForAWhile() throws {
        let source = CountingSource()
        var clock = Date(timeIntervalSince1970: 1000)
        let cache = CachedPodMetadataSource(source, lifetime: 60, now: { clock })
        XCTAssertEqual(try cache.pod(namespace: "ml", name: "a", uid: "u1")?.name, "a")
        XCTAssertEqual(try cache.pod(namespace: "ml", name: "a", uid: "u1")?.name, "a") // the pod's next container
        XCTAssertNil(try cache.pod(namespace: "ml", name: "gone", uid: "u2"))
        XCTAssertNil(try cache.pod(namespace: "ml", name: "gone", uid: "u2"), "a missing pod is remembered too")
        XCTAssertEqual(source.lookups, ["u1", "u2"])
        clock += 61
        source.failing = true
        XCTAssertThrowsError(try cache.pod(namespace: "ml", name: "a", uid: "u1"), "expired: asked again")
        source.failing = false
        XCTAssertNotNil(try cache.pod(namespace: "ml", name: "a", uid: "u1"), "a failure is not remembered")
        XCTAssertEqual(source.lookups, ["u1", "u2", "u1", "u1"])
    }
}
