import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool tail`, `publish` and `replay` against a real `spoold`: where reads start and stop,
    /// every partition merged, the output formats, the JSON round trip, and copies with `--to`.
    @Suite struct CLIReadTests {
        /// 2026-01-01T00:00:00Z: records stamped from here on, one second apart.
        static let origin: Int64 = 1_767_225_600_000

        static func iso(_ milliseconds: Int64) -> String { EventMetadata.formatTime(milliseconds) }

        @Test(.timeLimit(.minutes(4)))
        func jsonRoundTripCopiesATopicExactlyWithBinaryKeysValuesAndHeaders() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-roundtrip")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            let client = try await daemon.makeClient()
            defer { client.close() }
            try await client.createTopic("source", partitions: 3)
            try await client.createTopic("copy", partitions: 3)
            var generator = SeededGenerator(seed: 6)
            for number in 0..<60 {
                let key = number % 4 == 0 ? [0xFF, UInt8(number % 5)] : Array("key-\(number % 5)".utf8)
                let value = number % 3 == 0 ? (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) } : Array("välue \"\(number)\"\n\t".utf8)
                let headers = [RecordHeader(name: "n", string: "\(number)"), RecordHeader(name: "bin", value: [0x00, 0xC3, 0x28]),
                               RecordHeader(name: "empty", value: [])]
                let record = OutgoingRecord(key: key, value: value, headers: number % 2 == 0 ? headers : [], timestamp: Self.origin + Int64(number))
                try await client.publish(to: "source", records: [record])
            }

            let exported = try await runSpool(["tail", "source", "--from-beginning", "--exit-at-end", "--format", "json"] + broker)
            #expect(exported.termination == .exited(0), "\(exported)")
            #expect(exported.stdoutLines.count == 60)
            #expect(exported.stdoutText.contains("valueBase64") && exported.stdoutText.contains("keyBase64"), "binary must travel as base64")
            let imported = try await runSpool(["publish", "copy", "--format", "json"] + broker, input: exported.stdout)
            #expect(imported.termination == .exited(0), "\(imported)")
            #expect(imported.stderr.contains("published 60 records"), "\(imported.stderr)")

            for partition: Int32 in 0..<3 {
                let original = try await client.readToEnd(of: "source", partition: partition)
                let copied = try await client.readToEnd(of: "copy", partition: partition)
                // Keys land in the same partition of a topic with as many partitions; each key keeps its order.
                for key in Set(original.map { $0.key ?? [] }) {
                    let mine = original.filter { $0.key == key }, theirs = copied.filter { $0.key == key }
                    #expect(mine.map(\.value) == theirs.map(\.value), "values of key \(key) in partition \(partition)")
                    #expect(mine.map(\.headers) == theirs.map(\.headers), "headers of key \(key) in partition \(partition)")
                    #expect(mine.map(\.timestamp) == theirs.map(\.timestamp), "timestamps of key \(key) in partition \(partition)")
                }
                #expect(original.count == copied.count, "partition \(partition)")
            }

            // --file: each file's bytes are one record, exactly; SPOOL_BROKER stands in for --broker.
            let binaryFile = directory.appending("a.bin"), textFile = directory.appending("b.txt")
            try Data([0x00, 0xFF, 0x0A, 0x0D]).write(to: URL(fileURLWithPath: binaryFile))
            try Data("two\nlines\n".utf8).write(to: URL(fileURLWithPath: textFile))
            let files = try await runSpool(["publish", "files", "--key", "k", "--file", binaryFile, "--file", textFile] + broker)
            #expect(files.termination == .exited(0) && files.stderr.contains("published 2 records"), "\(files)")
            let viaEnvironment = try ChildProcess("/usr/bin/env", ["SPOOL_BROKER=\(daemon.endpoint)", try Binaries.spool,
                                                                  "tail", "files", "--from-beginning", "--exit-at-end", "--format", "json"])
            defer { viaEnvironment.killAndReap() }
            #expect(await viaEnvironment.waitForExit(timeout: .seconds(60)) == .exited(0), "\(viaEnvironment.stderr.text)")
            await viaEnvironment.waitForOutput()
            let stored = try JSONRecord.parseLines(viaEnvironment.stdout.lines)
            #expect(stored.map(\.value) == [[0x00, 0xFF, 0x0A, 0x0D], Array("two\nlines\n".utf8)] && stored.allSatisfy { $0.key == Array("k".utf8) },
                    "\(viaEnvironment.stdout.text)")

            // A bad line stops the import; the lines before it are published and the error names the line.
            let lines = exported.stdoutLines
            let bad = Data((lines[0] + "\n" + lines[1] + "\n{\"value\": 3}\n" + lines[2] + "\n").utf8)
            let refused = try await runSpool(["publish", "partial", "--format", "json"] + broker, input: bad)
            #expect(refused.termination == .exited(1), "\(refused)")
            #expect(refused.stderr.hasPrefix("spool: error: line 3: not a JSON record") && refused.stderr.contains("the 2 records before it were published"),
                    "\(refused.stderr)")
            #expect(try await client.offset(of: "partial", .latest) == 2)
            let notBase64 = try await runSpool(["publish", "partial", "--format", "json", #"{"valueBase64":"!!"}"#] + broker)
            #expect(notBase64.termination == .exited(1) && notBase64.stderr == "spool: error: value is not valid base64\n", "\(notBase64)")
        }

        @Test(.timeLimit(.minutes(4)))
        func tailStartsAndStopsWhereItIsTold() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-tail-range")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            let client = try await daemon.makeClient()
            defer { client.close() }
            let records = (0..<10).map { OutgoingRecord(key: Array("k\($0)".utf8), value: Array("v\($0)".utf8),
                                                        headers: [RecordHeader(name: "h", string: "x\($0)")], timestamp: Self.origin + Int64($0) * 1000) }
            try await client.publish(to: "range", records: records)
            try await client.publish(to: "range", value: Array("now".utf8))  // offset 10, stamped now

            func offsets(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Int64] {
                let result = try await runSpool(["tail", "range"] + arguments + broker)
                #expect(result.termination == .exited(0), "\(arguments): \(result)", sourceLocation: sourceLocation)
                return result.stdoutLines.map { Int64($0.prefix { $0 != "\t" }) ?? -1 }
            }
            #expect(try await offsets(["--last", "3", "--exit-at-end"]) == [8, 9, 10])
            #expect(try await offsets(["--from-time", Self.iso(Self.origin + 5000), "--exit-at-end"]) == [5, 6, 7, 8, 9, 10])
            #expect(try await offsets(["--from-beginning", "--until-time", Self.iso(Self.origin + 2000)]) == [0, 1, 2])
            #expect(try await offsets(["--from-beginning", "--count", "4"]) == [0, 1, 2, 3])
            #expect(try await offsets(["--offset", "2", "--until-offset", "4"]) == [2, 3, 4])
            #expect(try await offsets(["--since", "1h", "--exit-at-end"]) == [10])
            #expect(try await offsets(["--offset", "4", "--until-offset", "6", "--partition", "0"]) == [4, 5, 6])
            // --from and --until take the same positions in one option each.
            #expect(try await offsets(["--from", "5", "--until", "7"]) == [5, 6, 7])
            #expect(try await offsets(["--from", "beginning", "--until", Self.iso(Self.origin + 2000)]) == [0, 1, 2])
            #expect(try await offsets(["--from", Self.iso(Self.origin + 8000), "--until", "end"]) == [8, 9, 10])
            #expect(try await offsets(["--from", "2h", "--until", "end"]) == [10])
            let replayed = try await runSpool(["replay", "range", "--from", "beginning", "--until", "3"] + broker)
            #expect(replayed.stdoutLines.map { $0.prefix { $0 != "\t" } } == ["0", "1", "2", "3"], "\(replayed)")

            let templated = try await runSpool(["tail", "range", "--offset", "1", "--count", "1", "--template",
                                                "{topic}|{partition}|{offset}|{key}|{header:h}|{headers}|{timestamp}|{time}\\t{value}"] + broker)
            #expect(templated.stdoutLines == ["range|0|1|k1|x1|h=x1|\(Self.origin + 1000)|2026-01-01T00:00:01.000Z\tv1"], "\(templated)")
            let raw = try await runSpool(["tail", "range", "--offset", "3", "--count", "2", "--format", "raw"] + broker)
            #expect(raw.stdout == Data("v3\nv4\n".utf8), "\(raw)")

            // Every partition, merged; one partition alone.
            try await client.createTopic("spread", partitions: 3)
            var expected: [String] = []
            for number in 0..<12 {
                let key = "key-\(number)"
                let result = try await client.publish(to: "spread", key: Array(key.utf8), value: Array("v\(number)".utf8))
                expected.append("\(result.partition)/\(result.baseOffset)\t\(key)\tv\(number)")
            }
            let merged = try await runSpool(["tail", "spread", "--from-beginning", "--exit-at-end"] + broker)
            #expect(merged.termination == .exited(0), "\(merged)")
            #expect(merged.stdoutLines.sorted() == expected.sorted())
            for partition in 0..<3 {
                let mine = merged.stdoutLines.filter { $0.hasPrefix("\(partition)/") }
                #expect(mine == expected.filter { $0.hasPrefix("\(partition)/") }, "partition \(partition) out of order: \(mine)")
            }
            let counted = try await runSpool(["tail", "spread", "--from-beginning", "--count", "5"] + broker)
            #expect(counted.stdoutLines.count == 5 && Set(counted.stdoutLines).isSubset(of: expected), "\(counted)")
            let one = try await runSpool(["tail", "spread", "--partition", "1", "--from-beginning", "--exit-at-end"] + broker)
            #expect(one.stdoutLines == expected.filter { $0.hasPrefix("1/") }.map { String($0.dropFirst(2)) }, "\(one)")
            let lastOfEach = try await runSpool(["tail", "spread", "--last", "1", "--exit-at-end"] + broker)
            #expect(lastOfEach.stdoutLines.count == 3, "--last applies to each partition: \(lastOfEach)")

            let missing = try await runSpool(["tail", "spread", "--partition", "7", "--from-beginning"] + broker)
            #expect(missing.termination == .exited(1) && missing.stderr == "spool: error: topic 'spread' has no partition 7 (it has 3)\n", "\(missing)")
            let unknown = try await runSpool(["tail", "nothing-here", "--from-beginning"] + broker)
            #expect(unknown.termination == .exited(1) && unknown.stderr == "spool: error: topic 'nothing-here' does not exist\n", "\(unknown)")
        }

        @Test(.timeLimit(.minutes(4)))
        func replayToCopiesRecordsWithoutDeadLetterHeaders() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-replay-to")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            let client = try await daemon.makeClient()
            defer { client.close() }
            try await client.createTopic("orders", partitions: 2)
            try await client.createTopic("orders.dlq", partitions: 2)
            var originals: [OutgoingRecord] = []
            for number in 0..<20 {
                let original = OutgoingRecord(key: Array("order-\(number % 7)".utf8), value: [0xFF, UInt8(number)],
                                              headers: [RecordHeader(name: EventHeaderName.eventID, string: "event-\(number)"),
                                                        RecordHeader(name: "spool-dlq", string: "not a dead-letter header")],
                                              timestamp: Self.origin + Int64(number))
                originals.append(original)
                var dead = original
                dead.headers += [RecordHeader(name: DeadLetterHeaderName.error, string: "stock service down"),
                                 RecordHeader(name: DeadLetterHeaderName.attempts, string: "5"),
                                 RecordHeader(name: DeadLetterHeaderName.origin, string: "orders/0@\(number)")]
                try await client.publish(to: "orders.dlq", records: [dead])
            }

            let copied = try await runSpool(["replay", "orders.dlq", "--from-beginning", "--to", "orders", "--rate", "1000/s"] + broker)
            #expect(copied.termination == .exited(0), "\(copied)")
            // Standard error is a pipe: no progress bar, only the summary.
            #expect(copied.stderr == "copied 20 records from orders.dlq to orders\n", "\(copied.stderr)")
            var restored: [SpoolRecord] = []
            for partition: Int32 in 0..<2 { restored += try await client.readToEnd(of: "orders", partition: partition) }
            #expect(restored.count == 20)
            for original in originals {
                let match = restored.filter { $0.headers.first?.value == original.headers[0].value }
                #expect(match.count == 1 && match.first?.key == original.key && match.first?.value == original.value
                        && match.first?.headers == original.headers && match.first?.timestamp == original.timestamp,
                        "\(String(decoding: original.headers[0].value, as: UTF8.self)): \(match)")
            }

            // Ctrl-C stops a paced copy: what was taken is delivered, and the error says how much.
            try await client.publish(to: "backlog", records: (0..<1000).map { OutgoingRecord(value: Array("r\($0)".utf8)) })
            let slow = try ChildProcess(try Binaries.spool, ["replay", "backlog", "--from", "beginning", "--to", "backlog-copy", "--rate", "20/s"] + broker)
            defer { slow.killAndReap() }
            let started = await eventually(timeout: .seconds(60)) { ((try? await client.offset(of: "backlog-copy", .latest)) ?? 0) >= 3 }
            try #require(started, "the copy did not start: \(slow.stderr.text)")
            slow.send(SIGINT)
            let interrupted = await slow.waitForExit(timeout: .seconds(60))
            await slow.waitForOutput()
            #expect(interrupted == .exited(1), "\(slow.stderr.text)")
            let message = slow.stderr.text
            let copiedCount = message.split(separator: " ").dropFirst(4).first.flatMap { Int64($0) }
            #expect(message.hasPrefix("spool: error: interrupted: copied ") && message.hasSuffix(" of 1000 records from backlog to backlog-copy; the rest were not copied\n"),
                    "\(message)")
            let landed = try await client.offset(of: "backlog-copy", .latest)
            #expect(copiedCount == landed && landed < 1000, "the message says \(String(describing: copiedCount)), the topic holds \(landed)")

            // Printing a range of every partition: --until-offset applies per partition.
            let printed = try await runSpool(["replay", "orders", "--from-beginning", "--until-offset", "1", "--format", "json"] + broker)
            let parsed = try JSONRecord.parseLines(printed.stdoutLines)
            #expect(parsed.map { "\($0.partition)/\($0.offset)" }.sorted() == ["0/0", "0/1", "1/0", "1/1"], "\(printed)")
            let noStart = try await runSpool(["replay", "orders", "--to", "elsewhere"] + broker)
            #expect(noStart.termination == .exited(64) && noStart.stderr.contains("replay needs a start"), "\(noStart)")
            let badTarget = try await runSpool(["replay", "orders", "--from-beginning", "--to", "a/b"] + broker)
            #expect(badTarget.termination == .exited(64) && badTarget.stderr.contains("topic name"), "\(badTarget)")
        }

        @Test(.timeLimit(.minutes(2)), arguments: [
            (["tail", "t", "--from-time", "yesterday"], "--from-time"), (["tail", "t", "--since", "10x"], "--since"),
            (["tail", "t", "--until-time", "2026-13-45T99:00:00Z"], "--until-time"), (["tail", "t", "--last", "3", "--offset", "1"], "one start"),
            (["tail", "t", "--template", "{nope}"], "{nope}"), (["tail", "t", "--format", "json", "--template", "{value}"], "--template"),
            (["tail", "t", "--group", "g", "--last", "2"], "--group"), (["tail", "t", "--count", "0"], "--count"),
            (["tail", "t", "--from", "yesterday"], "--from"), (["replay", "t", "--from", "3", "--offset", "2"], "one start"),
            (["replay", "t", "--from", "0", "--until", "beginning"], "--until"), (["tail", "t", "--until", "5", "--until-offset", "6"], "--until"),
            (["publish", "t", "--format", "json", "--key", "k"], "--format json"), (["publish", "t", "v", "--file", "/etc/hostname"], "--file"),
            (["replay", "t", "--from-beginning", "--rate", "fast"], "--rate"), (["groups", "reset", "g", "--topic", "t"], "one target"),
            (["groups", "reset", "g", "--topic", "t", "--to-earliest", "--to-latest"], "one target"),
            (["groups", "reset", "g", "--topic", "t", "--to-earliest", "--dry-run", "--execute"], "--execute"),
            (["groups", "describe", "g", "--bogus"], "--bogus"), (["saga", "trace", "x", "--format", "svg"], "--format"),
            (["topics", "list", "--frobnicate"], "--frobnicate"), (["bench", "produce", "--count", "0"], "--count"),
        ])
        func badUsageIsExit64NamingTheProblem(arguments: [String], mention: String) async throws {
            // Nothing listens there: a usage error must come before any connection attempt.
            let result = try await runSpool(arguments + ["--broker", "tcp://127.0.0.1:\(try freeLoopbackPort())"], timeout: .seconds(30))
            #expect(result.termination == .exited(64), "\(arguments): \(result)")
            #expect(result.stderr.contains(mention), "\(arguments): \(result.stderr)")
        }

        @Test(.timeLimit(.minutes(2)))
        func helpShowsExamplesExitCodesAndCompletion() async throws {
            let help = try await runSpool(["--help"])
            #expect(help.termination == .exited(0))
            for needle in ["Exit codes: 0", "64 bad usage", "--generate-completion-script", "NO_COLOR", "SPOOL_BROKER", "saga", "groups"] {
                #expect(help.stdoutText.contains(needle), "spool --help lacks \(needle)")
            }
            for command in [["publish"], ["tail"], ["replay"], ["topics", "describe"], ["topics", "delete"], ["groups", "reset"], ["saga", "trace"], ["bench"]] {
                let result = try await runSpool(command + ["--help"])
                #expect(result.termination == .exited(0) && result.stdoutText.contains("spool \(command.joined(separator: " "))"),
                        "\(command) --help has no example: \(result.stdoutText.prefix(300))")
            }
            let completion = try await runSpool(["--generate-completion-script", "bash"])
            #expect(completion.termination == .exited(0) && completion.stdoutText.contains("saga") && completion.stdoutText.contains("groups"))
        }
    }
}
