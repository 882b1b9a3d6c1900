import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// Consumer groups with real processes: a real `spoold` and `spool tail --group` members.
    @Suite struct GroupProcessTests {
        /// The values a `spool tail --group` member printed (text lines `partition/offset<TAB>key<TAB>value`).
        private static func printedValues(_ member: ChildProcess) -> [String] {
            member.stdout.lines.compactMap { $0.split(separator: "\t", omittingEmptySubsequences: false).last.map(String.init) }
        }

        @Test(.timeLimit(.minutes(5)))
        func threeMembersShareSixPartitionsAndAKilledMembersPartitionsMove() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-groups")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient()
            defer { client.close() }
            try await client.createTopic("orders", partitions: 6)
            let members = try (0..<3).map { _ in
                try ChildProcess(try Binaries.spool, ["tail", "orders", "--group", "workers", "--broker", daemon.endpoint])
            }
            defer { members.forEach { $0.killAndReap() } }

            let settled = try await eventually(timeout: .seconds(30)) {
                let group = try await client.describeGroup("workers")
                return group.members.count == 3 && group.members.allSatisfy { $0.partitions.count == 2 }
            }
            let group = try await client.describeGroup("workers")
            try #require(settled, "the group did not settle: \(group.members)")
            #expect(Set(group.members.flatMap(\.partitions)).count == 6, "each member has 2 distinct partitions")

            func publish(_ prefix: String, _ count: Int) async throws -> [String] {
                let values = (0..<count).map { "\(prefix)-\($0)" }
                for value in values { try await client.publish(to: "orders", key: Array(value.utf8), value: Array(value.utf8)) }
                return values
            }
            let first = try await publish("first", 300)
            #expect(await eventually { Set(members.flatMap(Self.printedValues)).count == 300 }, "every member prints its share")

            let doomed = members[0]
            doomed.send(SIGKILL)
            _ = await doomed.waitForExit(timeout: .seconds(10))
            await doomed.waitForOutput()
            let second = try await publish("second", 300)
            let survivors = Array(members[1...])
            let moved = try await eventually(timeout: .seconds(40)) {
                let group = try await client.describeGroup("workers")
                return group.members.count == 2 && group.members.allSatisfy { $0.partitions.count == 3 }
            }
            #expect(moved, "the killed member's partitions moved within the session timeout (10 s)")
            let all = Set(first + second)
            #expect(await eventually(timeout: .seconds(30)) { Set(members.flatMap(Self.printedValues)) == all }, "every record was processed")

            let printed = members.flatMap(Self.printedValues)
            let doomedPrinted = Set(Self.printedValues(doomed))
            let duplicates = Dictionary(grouping: printed, by: { $0 }).filter { $0.value.count > 1 }.keys
            #expect(duplicates.allSatisfy { doomedPrinted.contains($0) }, "only records the killed member had processed come twice")
            #expect(duplicates.count < 300, "duplicates are bounded by the killed member's uncommitted records")

            for survivor in survivors { survivor.send(SIGTERM) }
            for survivor in survivors {
                let ended = await survivor.waitForExit(timeout: .seconds(20))
                #expect(ended == .exited(0), "a member stops gracefully on SIGTERM: \(survivor.stderr.text)")
            }
            let final = try await client.describeGroup("workers")
            #expect(final.members.isEmpty, "graceful members left the group")
            #expect(final.partitions.count == 6 && final.partitions.allSatisfy { $0.lag == 0 },
                    "their last commits cover everything they printed: \(final.partitions)")
        }

        /// Committed offsets survive kill -9 of the broker: each commit is acknowledged after its
        /// fdatasync, and the offset store's log is replayed at start.
        @Test(.timeLimit(.minutes(3)))
        func committedOffsetsSurviveKillNine() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-offsets")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            var expected: [CommittedOffset] = []
            do {
                let client = try await daemon.makeClient()
                defer { client.close() }
                try await client.createTopic("orders", partitions: 3)
                for round in 0..<50 {
                    let partition = TopicPartition(topic: "orders", partition: Int32(round % 3))
                    let offset = CommittedOffset(partition: partition, offset: Int64(round), metadata: "round \(round)")
                    try await client.commitOffsets("billing", [offset])
                    expected.removeAll { $0.partition == partition }
                    expected.append(offset)
                }
            }
            try await daemon.kill9()
            try await daemon.start()
            let client = try await daemon.makeClient()
            defer { client.close() }
            #expect(try await client.committedOffsets("billing") == expected.sorted { $0.partition < $1.partition })
            #expect(try await client.groups().map(\.name) == ["billing"])
        }

        /// Group members ride out a kill -9 of the broker: they reconnect, rejoin with the
        /// partitions they hold (the broker's rejoin grace keeps them theirs), and process
        /// everything published before and after, at least once, with no member failing.
        @Test(.timeLimit(.minutes(5)))
        func membersRideOutAKillNineOfTheBroker() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-group-restart")
            let config = directory.appending("spoold.yaml")
            try "group.rejoin.grace.ms: 3000\n".write(toFile: config, atomically: true, encoding: .utf8)
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--config", config])
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient(ClientConfiguration(requestTimeout: .seconds(5)))
            defer { client.close() }
            try await client.createTopic("orders", partitions: 4)
            let members = try (0..<2).map { _ in
                try ChildProcess(try Binaries.spool, ["tail", "orders", "--group", "workers", "--broker", daemon.endpoint])
            }
            defer { members.forEach { $0.killAndReap() } }
            let settled = try await eventually(timeout: .seconds(30)) {
                let group = try await client.describeGroup("workers")
                return group.members.count == 2 && group.members.allSatisfy { $0.partitions.count == 2 }
            }
            #expect(settled)
            func publish(_ prefix: String) async throws -> [String] {
                let values = (0..<200).map { "\(prefix)-\($0)" }
                for value in values { try await client.publish(to: "orders", key: Array(value.utf8), value: Array(value.utf8)) }
                return values
            }
            let before = try await publish("before")
            #expect(await eventually { Set(members.flatMap(Self.printedValues)).isSuperset(of: before) })
            try await daemon.kill9()
            try await Task.sleep(for: .milliseconds(500))
            try await daemon.start()
            let after = try await publish("after")
            #expect(await eventually(timeout: .seconds(60)) { Set(members.flatMap(Self.printedValues)) == Set(before + after) },
                    "every record was processed after the restart")
            #expect(members.allSatisfy { $0.isRunning }, "no member failed: \(members.map(\.stderr.text))")
            let group = try await client.describeGroup("workers")
            #expect(group.members.count == 2, "both members rejoined")
        }
    }
}
