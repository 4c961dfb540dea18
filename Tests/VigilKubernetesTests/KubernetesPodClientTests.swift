import Foundation
import VigilKubernetes
import VigilRuntime
import VigilTestSupport
import XCTest

/// The real client against a real TLS listener (fake-apiserver.py) with a CA made for the test.
final class KubernetesPodClientTests: XCTestCase {
    private var server: FakeAPIServer!

    override func setUpWithError() throws {
        server = try FakeAPIServer()
    }

    override func tearDown() {
        server.stop()
    }

    private func client(ca: String? = nil, token: String? = nil) throws -> KubernetesPodClient {
        try KubernetesPodClient(endpoint: .init(apiServer: server.url, tokenFile: token ?? server.tokenFile,
                                                caFile: ca ?? server.caFile, timeout: 3))
    }

    func testReadsLabelsAndTheWorkloadThatOwnsThePod() throws {
        let uid = UUID().uuidString.lowercased()
        try server.addPod(namespace: "ml", name: "llm-server-7d9c8f6b5-x2k4p", uid: uid,
                          labels: ["app": "llm", "pod-template-hash": "7d9c8f6b5"], controller: ("ReplicaSet", "llm-server-7d9c8f6b5"))
        let pod = try XCTUnwrap(try client().pod(namespace: "ml", name: "llm-server-7d9c8f6b5-x2k4p", uid: uid))
        XCTAssertEqual(pod.labels["app"], "llm")
        XCTAssertEqual(pod.owner, .init(kind: "deployment", name: "llm-server"))
        XCTAssertEqual(server.requests, ["GET /api/v1/namespaces/ml/pods/llm-server-7d9c8f6b5-x2k4p Bearer token-1"])
    }

    func testAPodGoneOrReplacedUnderItsNameIsNil() throws {
        try server.addPod(namespace: "ml", name: "web-0", uid: UUID().uuidString.lowercased(), controller: ("StatefulSet", "web"))
        let client = try client()
        XCTAssertNil(try client.pod(namespace: "ml", name: "web-0", uid: UUID().uuidString.lowercased()), "another pod's uid")
        XCTAssertNil(try client.pod(namespace: "ml", name: "web-1", uid: UUID().uuidString.lowercased()), "404")
    }

    func testTheTokenIsReadAgainForEveryRequest() throws {
        let uid = UUID().uuidString.lowercased()
        try server.addPod(namespace: "ml", name: "solo", uid: uid)
        let client = try client()
        XCTAssertEqual(try client.pod(namespace: "ml", name: "solo", uid: uid)?.owner, .init(kind: "pod", name: "solo"))
        try server.setToken("token-2") // the kubelet rotated the projected token
        XCTAssertNotNil(try client.pod(namespace: "ml", name: "solo", uid: uid))
        XCTAssertEqual(server.requests.last, "GET /api/v1/namespaces/ml/pods/solo Bearer token-2")
    }

    func testRefusalsAndUntrustedServersSayWhatToFix() throws {
        let uid = UUID().uuidString.lowercased()
        try server.addPod(namespace: "ml", name: "solo", uid: uid)
        let wrongToken = server.directory + "/wrong-token"
        try "nope".write(toFile: wrongToken, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try client(token: wrongToken).pod(namespace: "ml", name: "solo", uid: uid)) { error in
            XCTAssertTrue("\(error)".contains("401 Unauthorized"), "\(error)")
        }
        XCTAssertThrowsError(try client(ca: server.otherCAFile).pod(namespace: "ml", name: "solo", uid: uid)) { error in
            XCTAssertTrue("\(error)".contains("chain to '\(self.server.otherCAFile)'"), "\(error)")
        }
        XCTAssertEqual(server.requests.filter { $0.contains("token-1") }.count, 0, "no token is sent to a server the CA does not vouch for")
        server.forbid()
        XCTAssertThrowsError(try client().pod(namespace: "ml", name: "solo", uid: uid)) { error in
            XCTAssertTrue("\(error)".contains("deploy/rbac.yaml"), "\(error)")
        }
        XCTAssertThrowsError(try client().pod(namespace: "ml", name: "../../secrets", uid: uid)) { error in
            XCTAssertTrue("\(error)".contains("not a Kubernetes object name"), "\(error)")
        }
    }

    func testA404FromSomethingElseIsAnErrorNotAMissingPod() throws {
        let uid = UUID().uuidString.lowercased()
        try server.addPod(namespace: "ml", name: "solo", uid: uid)
        server.answerLikeAProxy()
        XCTAssertThrowsError(try client().pod(namespace: "ml", name: "solo", uid: uid)) { error in
            XCTAssertTrue("\(error)".contains("HTTP 404 404 page not found"), "\(error)")
        }
    }

    func testACertificateForAnotherHostIsRefused() throws {
        let elsewhere = try FakeAPIServer(certificateNames: "IP:10.9.9.9,DNS:elsewhere")
        defer { elsewhere.stop() }
        let uid = UUID().uuidString.lowercased()
        try elsewhere.addPod(namespace: "ml", name: "solo", uid: uid)
        let client = try KubernetesPodClient(endpoint: .init(apiServer: elsewhere.url, tokenFile: elsewhere.tokenFile,
                                                             caFile: elsewhere.caFile, timeout: 1))
        XCTAssertThrowsError(try client.pod(namespace: "ml", name: "solo", uid: uid)) { error in
            XCTAssertTrue("\(error)".contains("TLS failed"), "\(error)")
        }
        XCTAssertEqual(elsewhere.requests, [], "the token never left")
    }

    func testAServerThatNeverAnswersCostsTheTimeoutOnly() throws {
        let silent = try LoopbackSocket(family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
        let client = try KubernetesPodClient(endpoint: .init(apiServer: "https://127.0.0.1:\(silent.port)",
                                                             tokenFile: server.tokenFile, caFile: server.caFile, timeout: 1))
        let start = Date()
        XCTAssertThrowsError(try client.pod(namespace: "ml", name: "solo", uid: "u"))
        XCTAssertLessThan(Date().timeIntervalSince(start), 3, "bounded by the timeout")
    }

    func testMissingMountsFailAtStart() throws {
        XCTAssertThrowsError(try client(ca: "/nonexistent/ca.crt")) { error in
            XCTAssertTrue("\(error)".contains("automountServiceAccountToken"), "\(error)")
        }
        XCTAssertThrowsError(try client(token: "/nonexistent/token")) { error in
            XCTAssertTrue("\(error)".contains("cannot be read"), "\(error)")
        }
        XCTAssertThrowsError(try KubernetesPodClient(endpoint: .init(apiServer: "http://127.0.0.1:1", tokenFile: server.tokenFile,
                                                                      caFile: server.caFile))) { error in
            XCTAssertTrue("\(error)".contains("https://"), "\(error)")
        }
        XCTAssertThrowsError(try KubernetesPodClient(endpoint: .init(apiServer: server.url + "/api", tokenFile: server.tokenFile,
                                                                      caFile: server.caFile))) { error in
            XCTAssertTrue("\(error)".contains("no path"), "\(error)")
        }
        XCTAssertEqual(try KubernetesPodClient(endpoint: .init(apiServer: server.url + "/", tokenFile: server.tokenFile,
                                                               caFile: server.caFile)).endpoint.apiServer, server.url)
        XCTAssertEqual(KubernetesPodClient.Endpoint.apiServerFromEnvironment(["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]),
                       "https://10.96.0.1:443")
        XCTAssertEqual(KubernetesPodClient.Endpoint.apiServerFromEnvironment(["KUBERNETES_SERVICE_HOST": "fd00::1"]), "https://[fd00::1]:443")
        XCTAssertNil(KubernetesPodClient.Endpoint.apiServerFromEnvironment([:]))
    }
}
