import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spoold --config`: declared topics with their own settings, retention keys, and
    /// configuration errors that stop the daemon at once, pointing at the offending key.
    @Suite struct DaemonConfigTests {
        /// A configuration case that must stop spoold: the file, the key the error must name (at
        /// the line and column where it appears in the file), and other text it must mention.
        struct BadConfiguration: Sendable, CustomTestStringConvertible {
            let yaml: String
            let key: String
            let mentioning: String?

            init(_ yaml: String, key: String, mentioning: String? = nil) {
                self.yaml = yaml
                self.key = key
                self.mentioning = mentioning
            }

            /// 1-based line and column of the first occurrence of `key` that is followed by `:`
            /// (or, quoted, of its opening quote), as a YAML parser reports a key's position.
            var position: (line: Int, column: Int) {
                for (number, line) in yaml.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    for candidate in ["\"\(key)\":", "\(key):"] {
                        if let range = line.range(of: candidate) {
                            return (number + 1, line.distance(from: line.startIndex, to: range.lowerBound) + 1)
                        }
                    }
                }
                return (0, 0)
            }

            var testDescription: String { "\(key) in \(yaml.debugDescription)" }
        }

        static let badConfigurations: [BadConfiguration] = [
            // Topic settings, flow style (key and topic name on one line) and block style.
            BadConfiguration("topics:\n  orders: {partitions: 6, retention.msx: 5}\n", key: "retention.msx"),
            BadConfiguration("topics:\n  orders:\n    partitions: 6\n    retention.msx: 5\n", key: "retention.msx"),
            BadConfiguration("topics:\n  orders: {partitions: 6, retention.ms: soon}\n", key: "retention.ms", mentioning: "soon"),
            BadConfiguration("topics:\n  orders:\n    partitions: 6\n    retention.ms: soon\n", key: "retention.ms", mentioning: "soon"),
            BadConfiguration("topics:\n  audit:\n    fsync: sometimes\n", key: "fsync", mentioning: "sometimes"),
            BadConfiguration("topics:\n  orders: {partitions: 0}\n", key: "partitions"),
            // Topic names.
            BadConfiguration("topics:\n  \"bad/name\": {partitions: 1}\n", key: "bad/name"),
            BadConfiguration("fsync: always\ntopics:\n  ok: {partitions: 1}\n  \"bad/name\": {partitions: 1}\n", key: "bad/name"),
            // Top-level retention keys.
            BadConfiguration("fsync: always\nretention.bytes: lots\n", key: "retention.bytes", mentioning: "lots"),
            BadConfiguration("retention.ms: 0\n", key: "retention.ms"),
            BadConfiguration("retention.check.interval.ms: 0\n", key: "retention.check.interval.ms"),
        ]

        /// Declared topics exist as soon as spoold answers, with their partition counts (as
        /// `spool topics list` and a client see them) and their settings stored in `topic.json`.
        /// After a restart with another declaration, the disk's partition count wins, the new
        /// settings replace the old, and the records are still there.
        @Test(.timeLimit(.minutes(2)))
        func declaredTopicsExistWithTheirPartitionsAndSettings() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-topics")
            let config = directory.appending("spoold.yaml")
            let data = directory.appending("data")
            try """
                retention.check.interval.ms: 1000
                retention.bytes: -1
                topics:
                  orders: {partitions: 6, retention.ms: 86400000}
                  audit: {partitions: 1, fsync: always, retention.ms: -1}

                """.write(toFile: config, atomically: true, encoding: .utf8)
            let daemon = try await Daemon.start(dataDirectory: data, extraArguments: ["--config", config])
            defer { daemon.cleanUp() }

            let client = try await daemon.makeClient()
            let topics = try await client.topics()
            #expect(topics.map(\.name) == ["audit", "orders"])
            #expect(topics.first { $0.name == "orders" }?.partitions.map(\.partition) == Array(0..<6))
            #expect(topics.first { $0.name == "audit" }?.partitions.map(\.partition) == [0])
            let listed = try await runSpool(["topics", "list", "--broker", daemon.endpoint])
            #expect(listed.termination == .exited(0), "\(listed)")
            #expect(listed.stdoutLines == ["audit\t0\t0\t0"] + (0..<6).map { "orders\t\($0)\t0\t0" }, "\(listed.stdoutText)")
            #expect(try Self.storedTopic(data, "orders") == .init(partitions: 6, settings: ["retention.ms": "86400000"]))
            #expect(try Self.storedTopic(data, "audit") == .init(partitions: 1, settings: ["fsync": "always", "retention.ms": "-1"]))
            #expect(try await client.publish(to: "orders", partition: 5, value: [5]).baseOffset == 0)
            client.close()

            try await daemon.terminate()
            try """
                topics:
                  orders: {partitions: 3, retention.ms: 3600000}

                """.write(toFile: config, atomically: true, encoding: .utf8)
            try await daemon.start()
            let again = try await daemon.makeClient()
            defer { again.close() }
            let after = try await again.topics()
            #expect(after.map(\.name) == ["audit", "orders"], "a topic no longer declared stays")
            #expect(after.first { $0.name == "orders" }?.partitions.count == 6, "partitions never change: the disk's count wins")
            #expect(try Self.storedTopic(data, "orders") == .init(partitions: 6, settings: ["retention.ms": "3600000"]))
            #expect(try Self.storedTopic(data, "audit") == .init(partitions: 1, settings: ["fsync": "always", "retention.ms": "-1"]))
            #expect(try await again.readToEnd(of: "orders", partition: 5).map(\.value) == [[5]])
        }

        /// A bad configuration stops spoold at once with exit code 1 and one line on stderr that
        /// names the file, the line and column of the offending key, and the key; nothing is
        /// created in the data directory.
        @Test(.timeLimit(.minutes(2)), arguments: badConfigurations)
        func badConfigurationStopsTheDaemonAtTheKey(_ bad: BadConfiguration) async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-config")
            let config = directory.appending("spoold.yaml")
            let data = directory.appending("data")
            try bad.yaml.write(toFile: config, atomically: true, encoding: .utf8)
            let result = try await runSpoold(["--config", config, "--data-dir", data,
                                              "--listen", "tcp://127.0.0.1:\(try freeLoopbackPort())"], timeout: .seconds(30))
            #expect(result.termination == .exited(1), "\(result)")
            let lines = result.stderrLines
            #expect(lines.count == 1, "\(result.stderr)")
            let message = lines.first ?? ""
            #expect(message.hasPrefix("spoold: error: "), "\(message)")
            #expect(message.contains(bad.key), "does not name the key: \(message)")
            if let mentioning = bad.mentioning { #expect(message.contains(mentioning), "does not mention \(mentioning): \(message)") }
            let (line, column) = bad.position
            #expect(message.contains("\(config):\(line):\(column):"), "does not point at \(bad.key) (line \(line), column \(column)): \(message)")
            #expect(message.components(separatedBy: config).count == 2, "names the file more than once: \(message)")
            #expect(!FileManager.default.fileExists(atPath: data), "the data directory was created")
        }

        /// The documented configuration, `broker-config/spoold.yaml`, is accepted as it is, and
        /// documents every key a topic may set and the retention check interval.
        @Test(.timeLimit(.minutes(2)))
        func theDocumentedConfigurationStartsAndDocumentsEveryKey() async throws {
            let documented = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("broker-config/spoold.yaml").path
            let text = try String(contentsOfFile: documented, encoding: .utf8)
            let keys = ["fsync", "fsync.interval.ms", "segment.bytes", "segment.ms", "index.interval.bytes", "retention.ms",
                        "retention.bytes", "retention.check.interval.ms", "topics", "group.rejoin.grace.ms",
                        "curve.server.key.file", "curve.clients", "allow.plaintext.network", "acl",
                        "max.records.per.batch", "max.fetch.bytes", "max.topics", "max.parked.fetches.per.client",
                        "max.waiting.requests.per.client"]
            for key in keys {
                #expect(text.range(of: "(?m)^#? *\(NSRegularExpression.escapedPattern(for: key)):", options: .regularExpression) != nil,
                        "broker-config/spoold.yaml does not document \(key)")
            }
            let directory = try TemporaryDirectory(prefix: "spool-e2e-documented")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--config", documented])
            defer { daemon.cleanUp() }
            #expect(try await daemon.terminate() == .exited(0))
        }

        /// `<data>/<topic>/topic.json`: `{"partitions": N, "settings": {…}}`.
        struct StoredTopic: Equatable, Decodable {
            var partitions: Int
            var settings: [String: String]
        }

        static func storedTopic(_ data: String, _ topic: String) throws -> StoredTopic {
            try JSONDecoder().decode(StoredTopic.self, from: Data(contentsOf: URL(fileURLWithPath: "\(data)/\(topic)/topic.json")))
        }
    }
}
