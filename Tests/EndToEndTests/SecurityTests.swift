import Foundation
import Logging
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// CURVE: only admitted keys get in, the wire is encrypted, and plaintext stays on loopback.
    @Suite struct SecurityTests {
        /// Generates keys with the CLI, as an operator would.
        private func generateKeys(_ names: [String], in directory: String) async throws {
            for name in names {
                let result = try await runSpool(["keys", "generate", name, "--dir", directory])
                try #require(result.termination == .exited(0), "\(result)")
            }
        }

        /// The SpoolError `body` throws, or nil (recorded as an issue) if it throws nothing or something else.
        private func spoolError(_ body: () async throws -> Void) async -> SpoolError? {
            do {
                try await body()
                Issue.record("expected a SpoolError, but the call succeeded")
            } catch let error as SpoolError {
                return error
            } catch {
                Issue.record("expected a SpoolError, got \(error)")
            }
            return nil
        }

        private func client(_ daemon: Daemon, port: Int? = nil, curve: ClientCurve?) async throws -> SpoolClient {
            try await SpoolClient(endpoint: "tcp://127.0.0.1:\(port ?? daemon.port)",
                                  configuration: ClientConfiguration(requestTimeout: .seconds(5), connectTimeout: .seconds(5), curve: curve),
                                  logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        }

        @Test(.timeLimit(.minutes(3)))
        func onlyAdmittedKeysGetInAndTheWireIsEncrypted() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-curve")
            let keys = directory.appending("keys")
            try await generateKeys(["broker", "alice", "mallory"], in: keys)
            let secretMode = try FileManager.default.attributesOfItem(atPath: "\(keys)/alice.key")[.posixPermissions] as? Int
            #expect(secretMode == 0o600, "a secret key file is readable by its owner only")
            #expect(try await runSpool(["keys", "generate", "alice", "--dir", keys]).termination == .exited(1), "no silent overwrite")

            let config = directory.appending("spoold.yaml")
            try "curve.server.key.file: keys/broker.key\ncurve.clients:\n  alice: keys/alice.pub\n".write(toFile: config, atomically: true, encoding: .utf8)
            let brokerKey = try CurveKeyPair.publicKey(fileOrKey: "\(keys)/broker.pub")
            let alice = ClientCurve(serverPublicKey: brokerKey, keys: try CurveKeyPair(keyFile: "\(keys)/alice.key"))
            let mallory = ClientCurve(serverPublicKey: brokerKey, keys: try CurveKeyPair(keyFile: "\(keys)/mallory.key"))
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--config", config], probeCurve: alice)
            defer { daemon.cleanUp() }
            #expect(daemon.stderr.contains("CURVE on"), "the broker says at start that CURVE is on")

            // Through a relay that keeps every byte, an admitted client publishes and reads back.
            let proxy = try RecordingProxy(targetPort: daemon.port)
            defer { proxy.stop() }
            let secret = "card-4111-1111-1111-1111-" + UUID().uuidString
            let admitted = try await client(daemon, port: proxy.port, curve: alice)
            try await admitted.publish(to: "payments", value: Array(secret.utf8))
            let records = try await admitted.fetch(from: "payments", offset: 0).records
            #expect(records.map { String(decoding: $0.value, as: UTF8.self) } == [secret])
            admitted.close()
            #expect(!proxy.bytes.isEmpty, "the relay saw the traffic")
            #expect(!proxy.sawBytes(Array(secret.utf8)), "the payload crossed the wire in plaintext")
            #expect(!proxy.sawBytes(Array("payments".utf8)), "the topic name crossed the wire in plaintext")

            // A stranger's key and no key at all are refused with errors that say why.
            let refused = await spoolError { _ = try await client(daemon, curve: mallory) }
            #expect(refused?.code == .notAuthorized, "\(String(describing: refused))")
            let plaintext = await spoolError { _ = try await client(daemon, curve: nil) }
            #expect(plaintext?.code == .connectionFailed, "\(String(describing: plaintext))")
            #expect(plaintext?.message.contains("CURVE") == true, "\(String(describing: plaintext?.message))")

            // The CLI takes the key file and the broker's public key.
            let broker = ["--broker", daemon.endpoint]
            let withKeys = try await runSpool(["publish", "payments", "second", "--key-file", "\(keys)/alice.key", "--server-key", "\(keys)/broker.pub"] + broker)
            #expect(withKeys.termination == .exited(0), "\(withKeys)")
            let withoutKeys = try await runSpool(["publish", "payments", "third"] + broker)
            #expect(withoutKeys.termination == .exited(1) && withoutKeys.stderr.contains("CURVE"), "\(withoutKeys)")
            let strangerCLI = try await runSpool(["publish", "payments", "fourth", "--key-file", "\(keys)/mallory.key", "--server-key", "\(keys)/broker.pub"] + broker)
            #expect(strangerCLI.termination == .exited(1) && strangerCLI.stderr.contains("refused"), "\(strangerCLI)")
        }

        @Test(.timeLimit(.minutes(2)))
        func plaintextRefusesToListenBeyondLoopbackUnlessAllowed() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-plaintext")
            let port = try freeLoopbackPort()
            let refused = try await runSpoold(["--listen", "tcp://0.0.0.0:\(port)", "--data-dir", directory.appending("data")])
            #expect(refused.termination == .exited(1))
            #expect(refused.stderr.contains("without CURVE") && refused.stderr.contains("allow.plaintext.network"), "\(refused.stderr)")

            let config = directory.appending("spoold.yaml")
            try "curve.clients:\n  alice: \"\(try CurveKeyPair.generate().publicKey)\"\n".write(toFile: config, atomically: true, encoding: .utf8)
            let incomplete = try await runSpoold(["--config", config, "--data-dir", directory.appending("data")])
            #expect(incomplete.termination == .exited(1) && incomplete.stderr.contains("curve.server.key.file"), "\(incomplete.stderr)")

            try "allow.plaintext.network: true\n".write(toFile: config, atomically: true, encoding: .utf8)
            let allowed = try ChildProcess(try Binaries.spoold, withoutDefaultHTTP(["--config", config, "--listen", "tcp://0.0.0.0:\(port)",
                                                                                    "--data-dir", directory.appending("data")]))
            defer { allowed.killAndReap() }
            let reached = await eventually(timeout: .seconds(30)) {
                guard let client = try? await SpoolClient(endpoint: "tcp://127.0.0.1:\(port)", configuration: ClientConfiguration(connectTimeout: .seconds(2)))
                else { return false }
                defer { client.close() }
                return (try? await client.publish(to: "t", value: [1])) != nil
            }
            #expect(reached, "with allow.plaintext.network the broker listens on every interface: \(allowed.stderr.text)")
            #expect(allowed.stderr.text.contains("CURVE off"), "the broker says at start that it runs without CURVE")

            // The control for the wire check above: without CURVE the relay does see the payload.
            let proxy = try RecordingProxy(targetPort: port)
            defer { proxy.stop() }
            let plain = try await SpoolClient(endpoint: "tcp://127.0.0.1:\(proxy.port)", configuration: ClientConfiguration(connectTimeout: .seconds(5)))
            try await plain.publish(to: "t", value: Array("visible-payload".utf8))
            plain.close()
            #expect(proxy.sawBytes(Array("visible-payload".utf8)), "the relay captures what crosses the wire")
        }

        @Test(.timeLimit(.minutes(2)))
        func accessRulesRefuseWhatTheyDoNotGrant() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-acl")
            let keys = directory.appending("keys")
            try await generateKeys(["broker", "alice", "bob"], in: keys)
            let config = directory.appending("spoold.yaml")
            try """
                curve.server.key.file: keys/broker.key
                curve.clients: {alice: keys/alice.pub, bob: keys/bob.pub}
                acl:
                  orders: {produce: [alice], consume: [alice, bob]}
                  "*": {admin: [alice]}

                """.write(toFile: config, atomically: true, encoding: .utf8)
            let brokerKey = try CurveKeyPair.publicKey(fileOrKey: "\(keys)/broker.pub")
            let alice = ClientCurve(serverPublicKey: brokerKey, keys: try CurveKeyPair(keyFile: "\(keys)/alice.key"))
            let bob = ClientCurve(serverPublicKey: brokerKey, keys: try CurveKeyPair(keyFile: "\(keys)/bob.key"))
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--config", config], probeCurve: alice)
            defer { daemon.cleanUp() }

            let aliceClient = try await client(daemon, curve: alice)
            defer { aliceClient.close() }
            try await aliceClient.publish(to: "orders", value: Array("o-1".utf8))
            let bobClient = try await client(daemon, curve: bob)
            defer { bobClient.close() }
            #expect(try await bobClient.fetch(from: "orders", offset: 0).records.map(\.value) == [Array("o-1".utf8)])
            let refused = await spoolError { try await bobClient.publish(to: "orders", value: Array("forged".utf8)) }
            #expect(refused?.code == .notAuthorized)
            #expect(refused?.message.contains("'bob'") == true && refused?.message.contains("produce") == true
                        && refused?.message.contains("'orders'") == true, "\(String(describing: refused?.message))")
            #expect(await spoolError { try await bobClient.createTopic("invoices") }?.code == .notAuthorized)
            #expect(try await aliceClient.offset(of: "orders", .latest) == 1, "the refused record was not stored")
            #expect(await eventually { daemon.stderr.contains("not authorized") && daemon.stderr.contains("client=bob") },
                    "the broker logs the refusal")

            try "curve.server.key.file: keys/broker.key\ncurve.clients: {alice: keys/alice.pub}\nacl:\n  orders: {produce: [carol]}\n"
                .write(toFile: config, atomically: true, encoding: .utf8)
            let unknown = try await runSpoold(["--config", config, "--data-dir", directory.appending("data2")])
            #expect(unknown.termination == .exited(1) && unknown.stderr.contains("carol"), "\(unknown.stderr)")
        }

        /// Under CURVE the HTTP listener is the client `http.principal` (default `console`): the
        /// access rules for that name decide what the console reads, and it needs its token.
        @Test(.timeLimit(.minutes(3)))
        func theConsoleReadsOnlyWhatTheAccessRulesGrantItsPrincipal() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-acl-http")
            let keys = directory.appending("keys")
            try await generateKeys(["broker", "alice"], in: keys)
            try "console-token\n".write(toFile: directory.appending("http.token"), atomically: true, encoding: .utf8)
            let config = directory.appending("spoold.yaml")
            try """
                curve.server.key.file: keys/broker.key
                curve.clients: {alice: keys/alice.pub}
                http.token.file: http.token
                acl:
                  open: {produce: [alice], consume: [alice, console]}
                  secret: {produce: [alice], consume: [alice]}
                  "*": {admin: [alice]}

                """.write(toFile: config, atomically: true, encoding: .utf8)
            let alice = ClientCurve(serverPublicKey: try CurveKeyPair.publicKey(fileOrKey: "\(keys)/broker.pub"),
                                    keys: try CurveKeyPair(keyFile: "\(keys)/alice.key"))
            let http = try freeLoopbackPort()
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"),
                                                extraArguments: ["--config", config, "--http-listen", "127.0.0.1:\(http)"], probeCurve: alice)
            defer { daemon.cleanUp() }
            let aliceClient = try await client(daemon, curve: alice)
            defer { aliceClient.close() }
            try await aliceClient.publish(to: "open", value: Array("visible".utf8))
            try await aliceClient.publish(to: "secret", value: Array("hidden".utf8))

            let open = try await HTTPListenerTests.request(http, "/api/topics/open/records", token: "console-token")
            #expect(open.status == 200 && open.text.contains("\"text\":\"visible\""), "\(open.text)")
            let secret = try await HTTPListenerTests.request(http, "/api/topics/secret/records", token: "console-token")
            #expect(secret.status == 403 && secret.text.contains("'console'") && !secret.text.contains("hidden"), "\(secret.text)")
            let list = try await HTTPListenerTests.request(http, "/api/topics", token: "console-token")
            #expect(list.status == 200 && list.text.contains("\"notAuthorized\":[\"secret\"]") && list.text.contains("\"name\":\"open\""),
                    "topics the console may not describe are named, not shown: \(list.text)")
            #expect(try await HTTPListenerTests.request(http, "/api/topics").status == 401, "under CURVE the API needs the token")
        }
    }
}
