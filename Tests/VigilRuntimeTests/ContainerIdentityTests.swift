@testable import VigilRuntime
import Foundation
import VigilCore
import XCTest

final class ContainerIdentityTests: XCTestCase {
    let id = "4f0c2d1e9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e"
    let uid = "0d6f2a3c-1b2e-4c5d-8e9f-a0b1c2d3e4f5"
    var uidUnderscores: String { uid.replacingOccurrences(of: "-", with: "_") }

    func testParsesTheCgroupLayoutsOfEachRuntimeAndDriver() {
        let cases: [(String, ContainerCgroup?)] = [
            ("/kubepods/burstable/pod\(uid)/\(id)", .init(runtime: .unknown, containerID: id, podUID: uid, qosClass: "burstable")),
            ("/kubepods/pod\(uid)/\(id)", .init(runtime: .unknown, containerID: id, podUID: uid, qosClass: "guaranteed")),
            ("/kubepods/besteffort/pod\(uid)/crio-\(id)", .init(runtime: .crio, containerID: id, podUID: uid, qosClass: "besteffort")),
            ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidUnderscores).slice/cri-containerd-\(id).scope",
             .init(runtime: .containerd, containerID: id, podUID: uid, qosClass: "burstable")),
            ("/kubepods.slice/kubepods-pod\(uidUnderscores).slice/crio-\(id).scope",
             .init(runtime: .crio, containerID: id, podUID: uid, qosClass: "guaranteed")),
            ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uidUnderscores).slice/docker-\(id).scope",
             .init(runtime: .docker, containerID: id, podUID: uid, qosClass: "besteffort")),
            ("/system.slice/containerd.service/kubepods-burstable-pod\(uidUnderscores).slice:cri-containerd:\(id)", nil),
            ("/kubepods/burstable/pod\(uid)", nil),                  // the pod, not a container
            ("/user.slice/user-1000.slice/session-2.scope", nil),    // the host
            ("/docker/\(id)", nil),                                  // not a Kubernetes pod
        ]
        for (path, expected) in cases {
            XCTAssertEqual(ContainerCgroup.parse(path), expected, path)
        }
    }

    func testPodIdentityFromContainerdAndCRIOAnnotations() {
        let containerd = PodIdentity(annotations: [
            "io.kubernetes.cri.sandbox-namespace": "ml", "io.kubernetes.cri.sandbox-name": "llm-server-7d9c8f6b5-x2k4p",
            "io.kubernetes.cri.container-name": "server", "io.kubernetes.cri.image-name": "registry/llm:1.4",
        ])
        XCTAssertEqual(containerd, PodIdentity(namespace: "ml", pod: "llm-server-7d9c8f6b5-x2k4p", container: "server", image: "registry/llm:1.4"))
        XCTAssertEqual(containerd?.workloadKey, "ml/deployment/llm-server/server")
        let crio = PodIdentity(annotations: [
            "io.kubernetes.pod.namespace": "ml", "io.kubernetes.pod.name": "embedder-0", "io.kubernetes.container.name": "model",
        ])
        XCTAssertEqual(crio?.workloadKey, "ml/statefulset/embedder/model")
        XCTAssertNil(PodIdentity(annotations: ["bundle": "/run/x"]))
    }

    func testReplicasShareOneWorkloadKey() {
        XCTAssertEqual(PodIdentity.owner(ofPod: "llm-server-7d9c8f6b5-x2k4p").name, "llm-server")
        XCTAssertEqual(PodIdentity.owner(ofPod: "llm-server-7d9c8f6b5-q8w7e").name, "llm-server")
        XCTAssertEqual(PodIdentity.owner(ofPod: "node-agent-7xk2p").kind, "generated")
        XCTAssertEqual(PodIdentity.owner(ofPod: "node-agent-7xk2p").name, "node-agent")
        XCTAssertEqual(PodIdentity.owner(ofPod: "debug").kind, "pod")
        XCTAssertEqual(PodIdentity.owner(ofPod: "web-12").kind, "statefulset")
    }

    func testReadsAnnotationsFromRuncState() throws {
        let state = #"{"id":"x","config":{"labels":["bundle=/run/bundles/x","io.kubernetes.cri.sandbox-namespace=ml","a=b=c"]}}"#
        let annotations = try XCTUnwrap(RuntimeStateReader.annotations(stateJSON: Data(state.utf8)))
        XCTAssertEqual(annotations["io.kubernetes.cri.sandbox-namespace"], "ml")
        XCTAssertEqual(annotations["bundle"], "/run/bundles/x")
        XCTAssertEqual(annotations["a"], "b=c")
    }

    /// The runtime and its no_new_privs setting: what the container's seccomp filter must let run.
    func testTellsRuncAndNoNewPrivilegesFromTheState() throws {
        for flag in [true, false] {
            let state = #"{"id":"x","init_process_pid":4242,"init_process_start":17,"config":{"no_new_privileges":\#(flag),"labels":[]}}"#
            XCTAssertEqual(RuntimeStateReader.state(stateJSON: Data(state.utf8))?.runtime, ObservedRuntime(runtime: "runc", noNewPrivileges: flag))
        }
        // runc leaves no_new_privileges out when it is false (omitempty).
        let unset = #"{"id":"x","init_process_pid":4242,"config":{"labels":[]}}"#
        XCTAssertEqual(RuntimeStateReader.state(stateJSON: Data(unset.utf8))?.runtime, ObservedRuntime(runtime: "runc", noNewPrivileges: false))
        let foreign = #"{"ociVersion":"1.0.2","id":"x","status":"running","pid":1,"bundle":"/b","config":{}}"#
        XCTAssertNil(RuntimeStateReader.state(stateJSON: Data(foreign.utf8))?.runtime, "not libcontainer's state: the runtime is unknown")
    }
}
