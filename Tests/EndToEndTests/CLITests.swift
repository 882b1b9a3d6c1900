import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// The `spool` command line against a real `spoold`.
    @Suite struct CLITests {
        @Test(.timeLimit(.minutes(4)))
        func publishTailAndReplayPrintTheRightRecords() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-cli")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]

            // seq 1 1000 | spool publish nums
            let numbers = (1...1000).map(String.init)
            let published = try await runSpool(["publish", "nums"] + broker, input: Data((numbers.joined(separator: "\n") + "\n").utf8))
            #expect(published.termination == .exited(0), "\(published)")
            #expect(published.stderr.contains("1000"), "publish does not say how many it published: \(published.stderr)")

            let all = try await runSpool(["tail", "nums", "--from-beginning", "--exit-at-end"] + broker)
            #expect(all.termination == .exited(0), "\(all)")
            #expect(all.stdoutLines == numbers.enumerated().map { "\($0.offset)\t\t\($0.element)" })

            let lastTen = try await runSpool(["tail", "nums", "--offset", "990", "--exit-at-end"] + broker)
            #expect(lastTen.termination == .exited(0), "\(lastTen)")
            #expect(lastTen.stdoutLines == (990..<1000).map { "\($0)\t\t\($0 + 1)" })
            let replayTen = try await runSpool(["replay", "nums", "--offset", "990"] + broker)
            #expect(replayTen.stdoutLines == lastTen.stdoutLines)

            let range = try await runSpool(["replay", "nums", "--offset", "5", "--until-offset", "9"] + broker)
            #expect(range.termination == .exited(0), "\(range)")
            #expect(range.stdoutLines == (5...9).map { "\($0)\t\t\($0 + 1)" })
            let single = try await runSpool(["replay", "nums", "--offset", "999", "--until-offset", "999", "--format", "json"] + broker)
            let record = try #require(try JSONRecord.parseLines(single.stdoutLines).first)
            #expect(single.stdoutLines.count == 1 && record.offset == 999 && record.value == Array("1000".utf8) && record.key == nil)

            // Key and headers.
            let keyed = try await runSpool(["publish", "keyed", "--key", "k", "--header", "a=b", "--header", "c=d=e", "--header", "empty=",
                                            "héllo \"world\""] + broker)
            #expect(keyed.termination == .exited(0), "\(keyed)")
            #expect(keyed.stdoutText.contains("offset 0"), "\(keyed.stdoutText)")
            let json = try await runSpool(["replay", "keyed", "--from-beginning", "--format", "json"] + broker)
            #expect(json.termination == .exited(0), "\(json)")
            let keyedRecords = try JSONRecord.parseLines(json.stdoutLines)
            try #require(keyedRecords.count == 1)
            #expect(keyedRecords[0].topic == "keyed" && keyedRecords[0].partition == 0 && keyedRecords[0].offset == 0)
            #expect(keyedRecords[0].key == Array("k".utf8))
            #expect(keyedRecords[0].value == Array("héllo \"world\"".utf8))
            #expect(keyedRecords[0].headers == [RecordHeader(name: "a", string: "b"), RecordHeader(name: "c", string: "d=e"),
                                                RecordHeader(name: "empty", string: "")])

            // Binary values printed as text stay one line per record and come back exact as JSON.
            let client = try await daemon.makeClient()
            defer { client.close() }
            let binary: [UInt8] = [0x00, 0x0A, 0x0D, 0x09, 0xFF, 0xC3, 0x28, 0x5C]
            try await client.publish(to: "binary", key: [0xFE], value: binary)
            let asText = try await runSpool(["replay", "binary", "--from-beginning"] + broker)
            #expect(asText.stdoutLines.count == 1, "a binary record spans several lines: \(asText.stdoutLines)")
            let asJSON = try await runSpool(["replay", "binary", "--from-beginning", "--format", "json"] + broker)
            let binaryRecord = try #require(try JSONRecord.parseLines(asJSON.stdoutLines).first)
            #expect(binaryRecord.value == binary && binaryRecord.key == [0xFE])
        }

        @Test(.timeLimit(.minutes(3)))
        func tailFollowsRecordsPublishedAfterItStarted() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-follow")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient()
            defer { client.close() }
            let topic = "follow"
            try await client.publish(to: topic, records: (0..<3).map { OutgoingRecord(value: Array("old-\($0)".utf8)) })

            let tail = try ChildProcess(try Binaries.spool, ["tail", topic, "--broker", daemon.endpoint])
            defer { tail.killAndReap() }
            // `tail` starts at the end when it has connected; until it prints something, keep publishing.
            var published: [Int64: String] = [:]
            var number = 0
            let following = try await eventually(timeout: .seconds(60)) {
                if let termination = tail.termination { throw HarnessError("spool tail exited (\(termination)): \(tail.stderr.text)") }
                let value = "new-\(number)"
                number += 1
                published[try await client.publish(to: topic, value: Array(value.utf8)).baseOffset] = value
                try await Task.sleep(for: .milliseconds(50))
                return !tail.stdout.lines.isEmpty
            }
            try #require(following, "spool tail printed nothing; stderr: \(tail.stderr.text)")
            for final in 0..<5 {
                let value = "final-\(final)"
                published[try await client.publish(to: topic, value: Array(value.utf8)).baseOffset] = value
            }
            let end = try await client.offset(of: topic, .latest)
            let caughtUp = await eventually { tail.stdout.lines.last?.hasPrefix("\(end - 1)\t") == true }
            #expect(caughtUp, "spool tail did not print the last record; it printed: \(tail.stdout.lines)")
            tail.send(SIGTERM)
            #expect(await tail.waitForExit(timeout: .seconds(30)) != nil, "spool tail ignored SIGTERM")

            let lines = tail.stdout.lines
            let offsets = lines.compactMap { Int64($0.prefix { $0 != "\t" }) }
            #expect(offsets.count == lines.count, "lines without an offset: \(lines)")
            let first = try #require(offsets.first)
            #expect(first >= 3, "tail printed a record from before it started")
            #expect(offsets == Array(first..<end), "gaps or duplicates: \(offsets)")
            for line in lines {
                let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
                #expect(parts.count == 3 && published[Int64(parts[0]) ?? -1] == String(parts[2]), "unexpected line \(line)")
            }
        }

        @Test(.timeLimit(.minutes(2)))
        func topicsCreateSetsPartitionsThatKeysSpreadOverAndListShowsOffsets() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-topics")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]

            let created = try await runSpool(["topics", "create", "orders", "--partitions", "3"] + broker)
            #expect(created.termination == .exited(0), "\(created)")
            let again = try await runSpool(["topics", "create", "orders", "--partitions", "3"] + broker)
            #expect(again.termination == .exited(1))
            #expect(again.stderr == "spool: error: topic 'orders' already exists\n", "\(again)")
            let zero = try await runSpool(["topics", "create", "empty", "--partitions", "0"] + broker)
            #expect(zero.termination == .exited(64), "\(zero)")
            let badName = try await runSpool(["topics", "create", "a/b"] + broker)
            #expect(badName.termination == .exited(1) && badName.stderr.hasPrefix("spool: error: topic name"), "\(badName)")

            var expected = [Int64](repeating: 0, count: 3)
            for key in ["a", "b", "c", "d", "e", "f", "g"] {
                let published = try await runSpool(["publish", "orders", "--key", key, "v"] + broker)
                #expect(published.termination == .exited(0), "\(published)")
                expected[Int(Partitioner.partition(forKey: Array(key.utf8), partitionCount: 3))] += 1
            }
            _ = try await runSpool(["publish", "other", "x"] + broker)

            let listed = try await runSpool(["topics", "list"] + broker)
            #expect(listed.termination == .exited(0), "\(listed)")
            #expect(listed.stdoutLines == ["orders\t0\t0\t\(expected[0])", "orders\t1\t0\t\(expected[1])",
                                           "orders\t2\t0\t\(expected[2])", "other\t0\t0\t1"])
        }
    }
}
