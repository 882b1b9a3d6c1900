import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// Bad input ends in one clear line on stderr, a non-zero exit code, and nothing stored.
    @Suite struct BadInputTests {
        /// `spool` failed the way a user can understand: non-zero exit, and stderr either one
        /// `spool: error:` line or ArgumentParser's `Error:` line (followed by its usage).
        static func expectCleanFailure(_ result: CommandResult, mentioning: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(result.termination != .exited(0), "it succeeded: \(result)", sourceLocation: sourceLocation)
            if case .signalled = result.termination { Issue.record("it crashed: \(result)", sourceLocation: sourceLocation) }
            let lines = result.stderrLines
            let first = lines.first ?? ""
            if first.hasPrefix("spool: error: ") {
                #expect(lines.count == 1, "more than one line on stderr: \(result.stderr)", sourceLocation: sourceLocation)
                #expect(result.termination == .exited(1), sourceLocation: sourceLocation)
            } else {
                #expect(first.hasPrefix("Error: "), "stderr does not start with 'spool: error:' or 'Error:': \(result.stderr)", sourceLocation: sourceLocation)
                #expect(result.termination == .exited(64), "usage errors exit 64: \(result)", sourceLocation: sourceLocation)
            }
            if let mentioning {
                #expect(first.contains(mentioning), "the error does not mention \(mentioning): \(first)", sourceLocation: sourceLocation)
            }
            #expect(!result.stderr.contains("Fatal error"), sourceLocation: sourceLocation)
        }

        @Test(.timeLimit(.minutes(3)))
        func invalidTopicNamesAreRejectedAndNothingIsStored() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-names")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            for name in ["..", "a/b", "", String(repeating: "n", count: 300), "../escape", "sp ace"] {
                let shown = "'\(name.prefix(20))'"
                Self.expectCleanFailure(try await runSpool(["publish", name, "value"] + broker))
                Self.expectCleanFailure(try await runSpool(["publish", name] + broker, input: Data("a\nb\n".utf8)))
                Self.expectCleanFailure(try await runSpool(["tail", name, "--from-beginning", "--exit-at-end"] + broker))
                Self.expectCleanFailure(try await runSpool(["replay", name, "--from-beginning"] + broker))
                print("checked topic name \(shown)")
            }
            let client = try await daemon.makeClient()
            defer { client.close() }
            #expect(try await client.topics().isEmpty, "an invalid name created a topic")
            let entries = try FileManager.default.contentsOfDirectory(atPath: directory.appending("data")).filter { !$0.hasPrefix("@") }
            #expect(entries.isEmpty, "the data directory has \(entries)")
            #expect(!FileManager.default.fileExists(atPath: directory.appending("escape")), "a topic escaped the data directory")
        }

        @Test(.timeLimit(.minutes(3)))
        func oversizedRecordsAreRejectedAndNothingIsStored() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-big")
            let config = directory.appending("strict.yaml")
            try "max.batch.bytes: 2048\n".write(toFile: config, atomically: true, encoding: .utf8)
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--config", config])
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]

            // 2 MiB: over the client's default 1 MiB limit, rejected before sending.
            let huge = Data(String(repeating: "x", count: 2 << 20).utf8) + Data("\n".utf8)
            let clientSide = try await runSpool(["publish", "big"] + broker, input: huge)
            Self.expectCleanFailure(clientSide)
            #expect(clientSide.stderr.contains("bytes"), "\(clientSide.stderr)")

            // 4 KB: under the client's limit, over the broker's max.batch.bytes.
            let brokerSide = try await runSpool(["publish", "big", String(repeating: "y", count: 4000)] + broker)
            Self.expectCleanFailure(brokerSide, mentioning: "2048")

            let client = try await daemon.makeClient()
            defer { client.close() }
            let stored = try await client.topics(["big"]).first?.partitions.map(\.latestOffset) ?? []
            #expect(stored.allSatisfy { $0 == 0 }, "a rejected record was stored: \(stored)")
            let fits = try await runSpool(["publish", "big", "small enough"] + broker)
            #expect(fits.termination == .exited(0), "\(fits)")
            #expect(try await client.offset(of: "big", .latest) == 1)
        }

        @Test(.timeLimit(.minutes(2)))
        func usageErrorsAreReportedByTheParser() async throws {
            Self.expectCleanFailure(try await runSpool(["publish", "t", "v", "--bogus"]), mentioning: "--bogus")
            Self.expectCleanFailure(try await runSpool(["frobnicate"]))
            Self.expectCleanFailure(try await runSpool(["replay", "t"]), mentioning: "--from-beginning")
            Self.expectCleanFailure(try await runSpool(["tail", "t", "--offset", "-3"]))
            Self.expectCleanFailure(try await runSpool(["tail", "t", "--from-beginning", "--offset", "3"]))
            Self.expectCleanFailure(try await runSpool(["replay", "t", "--offset", "9", "--until-offset", "5"]))
            Self.expectCleanFailure(try await runSpool(["publish", "t", "v", "--header", "novalue"]), mentioning: "novalue")
            let daemonUsage = try await runSpoold(["--bogus"])
            #expect(daemonUsage.termination == .exited(64), "\(daemonUsage)")
            #expect(daemonUsage.stderrLines.first?.hasPrefix("Error: ") == true, "\(daemonUsage)")
        }

        @Test(.timeLimit(.minutes(2)))
        func aBrokerThatIsNotRunningFailsFast() async throws {
            let endpoint = "tcp://127.0.0.1:\(try freeLoopbackPort())"
            for arguments in [["publish", "t", "v"], ["tail", "t"], ["replay", "t", "--from-beginning"]] {
                // The timeout catches a hang; the error must come from the refused connection.
                let result = try await runSpool(arguments + ["--broker", endpoint], input: Data("line\n".utf8), timeout: .seconds(20))
                Self.expectCleanFailure(result, mentioning: "127.0.0.1")
                #expect(result.termination == .exited(1))
            }
        }

        @Test(.timeLimit(.minutes(2)), arguments: [
            ("fsync: always\nsegment.bytes: 1048576\nbogus.key: 1\n", "bogus.key", 3),
            ("segment.bytes: lots\n", "segment.bytes", 1),
            ("log.level: info\nfsync: sometimes\n", "fsync", 2),
            ("default.partitions: 0\n", "default.partitions", 1),
            ("auto.create.topics: perhaps\n", "auto.create.topics", 1),
        ])
        func badConfigurationStopsTheDaemonNamingKeyAndLine(yaml: String, key: String, line: Int) async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-config")
            let config = directory.appending("spoold.yaml")
            try yaml.write(toFile: config, atomically: true, encoding: .utf8)
            let result = try await runSpoold(["--config", config, "--data-dir", directory.appending("data"),
                                              "--listen", "tcp://127.0.0.1:\(try freeLoopbackPort())"], timeout: .seconds(30))
            #expect(result.termination == .exited(1), "\(result)")
            let lines = result.stderrLines
            #expect(lines.count == 1, "\(result.stderr)")
            let message = lines.first ?? ""
            #expect(message.hasPrefix("spoold: error: "), "\(message)")
            #expect(message.contains(key), "does not name the key: \(message)")
            #expect(message.contains("\(config):\(line):"), "does not name line \(line): \(message)")
        }

        @Test(.timeLimit(.minutes(2)))
        func badFlagValuesStopTheDaemonNamingTheFlag() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-flags")
            let result = try await runSpoold(["--fsync", "sometimes", "--data-dir", directory.appending("data"),
                                              "--listen", "tcp://127.0.0.1:\(try freeLoopbackPort())"], timeout: .seconds(30))
            #expect(result.termination == .exited(1), "\(result)")
            #expect(result.stderrLines.first?.hasPrefix("spoold: error: ") == true && result.stderr.contains("--fsync"), "\(result)")
            let missing = try await runSpoold(["--config", directory.appending("absent.yaml"), "--data-dir", directory.appending("data")],
                                              timeout: .seconds(30))
            #expect(missing.termination == .exited(1), "\(missing)")
            #expect(missing.stderr.contains("absent.yaml"), "\(missing)")
        }

        @Test(.timeLimit(.minutes(2)))
        func aSecondDaemonOnTheSameDirectoryIsTurnedAway() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-lock")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let second = try await runSpoold(["--data-dir", directory.appending("data"),
                                              "--listen", "tcp://127.0.0.1:\(try freeLoopbackPort())"], timeout: .seconds(30))
            #expect(second.termination == .exited(1), "\(second)")
            let errorLine = second.stderrLines.first { $0.hasPrefix("spoold: error: ") } ?? ""
            #expect(errorLine.contains("in use"), "\(second.stderr)")
            #expect(errorLine.contains("pid \(daemon.current?.pid ?? -1)"), "does not name the running daemon's pid: \(second.stderr)")
            // The first daemon is unharmed.
            let client = try await daemon.makeClient()
            defer { client.close() }
            #expect(try await client.publish(to: "still-here", value: [1]).baseOffset == 0)
        }
    }
}
