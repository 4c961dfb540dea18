import Foundation
import VigilKubernetes
import VigilTestSupport
import XCTest

/// The command line's way to the API server: a kubeconfig's context, with a bearer token and
/// the cluster's CA, inline or in files; what a security tool should not accept is refused.
final class KubeconfigTests: XCTestCase {
    private var server: FakeAPIServer!

    override func setUpWithError() throws {
        server = try FakeAPIServer()
    }

    override func tearDown() {
        server.stop()
    }

    private func write(_ text: String) throws -> String {
        let file = server.directory + "/kubeconfig-\(UInt32.random(in: 0...UInt32.max))"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    private func kubeconfig(cluster: String, user: String, current: String = "test") -> String {
        """
        apiVersion: v1
        kind: Config
        current-context: \(current)
        contexts:
          - name: test
            context: {cluster: c, user: u}
          - name: other
            context: {cluster: c, user: nobody}
        clusters:
          - name: c
            cluster:
        \(cluster)
        users:
          - name: u
            user:
        \(user)
        """
    }

    func testInlineAndFileCredentialsReachTheAPIServer() throws {
        let ca = try Data(contentsOf: URL(fileURLWithPath: server.caFile)).base64EncodedString()
        let inline = try write(kubeconfig(cluster: "      server: \(server.url)\n      certificate-authority-data: \(ca)",
                                          user: "      token: token-1"))
        XCTAssertEqual(try WorkloadProfileClient(endpoint: Kubeconfig.endpoint(file: inline)).list().profiles, [])
        let files = try write(kubeconfig(cluster: "      server: \(server.url)\n      certificate-authority: \(server.caFile)",
                                         user: "      tokenFile: \(server.tokenFile)"))
        XCTAssertEqual(try WorkloadProfileClient(endpoint: Kubeconfig.endpoint(file: files)).list().profiles, [])
        let wrong = try write(kubeconfig(cluster: "      server: \(server.url)\n      certificate-authority-data: \(ca)",
                                         user: "      token: not-the-token"))
        XCTAssertThrowsError(try WorkloadProfileClient(endpoint: Kubeconfig.endpoint(file: wrong)).list()) { error in
            XCTAssertTrue("\(error)".contains("401"), "\(error)")
        }
    }

    func testWhatIsNotAcceptedSaysWhatToUse() throws {
        let base = "      server: \(server.url)\n      certificate-authority: \(server.caFile)"
        for (cluster, user, expected) in [
            (base, "      client-certificate-data: AAAA\n      client-key-data: AAAA", "client certificate"),
            (base, "      exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}", "plugin"),
            ("      server: \(server.url)\n      insecure-skip-tls-verify: true", "      token: token-1", "skips TLS verification"),
            ("      server: \(server.url)", "      token: token-1", "certificate-authority"),
        ] {
            let file = try write(kubeconfig(cluster: cluster, user: user))
            XCTAssertThrowsError(try Kubeconfig.endpoint(file: file)) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
        let file = try write(kubeconfig(cluster: base, user: "      token: token-1"))
        XCTAssertThrowsError(try Kubeconfig.endpoint(file: file, context: "other")) { error in
            XCTAssertTrue("\(error)".contains("nobody"), "\(error)")
        }
        XCTAssertThrowsError(try Kubeconfig.endpoint(file: file, context: "missing"))
        XCTAssertThrowsError(try Kubeconfig.endpoint(file: server.directory + "/none"))
    }
}
