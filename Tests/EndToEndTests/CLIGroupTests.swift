import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool groups list|describe|reset` against a real `spoold` and a real `spool tail --group`.
    @Suite struct CLIGroupTests {
        @Test(.timeLimit(.minutes(4)))
        func resetPlansByDefaultExecutesOnRequestAndRefusesALiveGroup() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-groups")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            let client = try await daemon.makeClient()
            defer { client.close() }
            try await client.createTopic("audit-log", partitions: 2)
            var ends: [Int64] = [0, 0]
            for number in 0..<10 {
                let record = OutgoingRecord(value: Array("v\(number)".utf8), timestamp: CLIReadTests.origin + Int64(number) * 1000)
                let result = try await client.publish(to: "audit-log", partition: Int32(number % 2), records: [record])
                ends[Int(result.partition)] = result.baseOffset + 1
            }

            // A live member consumes everything.
            let member = try ChildProcess(try Binaries.spool, ["tail", "audit-log", "--group", "auditors"] + broker)
            defer { member.killAndReap() }
            let consumed = await eventually(timeout: .seconds(60)) { member.stdout.lines.count == 10 }
            try #require(consumed, "the group member printed \(member.stdout.lines); stderr: \(member.stderr.text)")
            let live = try await runSpool(["groups", "describe", "auditors"] + broker)
            #expect(live.termination == .exited(0), "\(live)")
            #expect(live.stdoutLines.first?.hasPrefix("group auditors stable generation") == true
                    && live.stdoutLines.first?.hasSuffix("members 1") == true, "\(live.stdoutText)")
            let memberID = try #require(try await client.describeGroup("auditors").members.first?.memberID)
            #expect(live.stdoutLines.dropFirst().first == "member\t\(memberID)\taudit-log/0,audit-log/1", "\(live.stdoutText)")
            // Committed offsets follow every second; log ends and owners are known at once.
            let partitionLines = live.stdoutLines.dropFirst(2).map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
            #expect(partitionLines.map { $0.count == 6 ? [$0[0], $0[1], $0[3], $0[5]] : [] }
                    == [["audit-log", "0", "\(ends[0])", memberID], ["audit-log", "1", "\(ends[1])", memberID]], "\(live.stdoutText)")
            let refused = try await runSpool(["groups", "reset", "auditors", "--topic", "audit-log", "--to-earliest", "--execute"] + broker)
            #expect(refused.termination == .exited(1), "\(refused)")
            #expect(refused.stderr == "spool: error: group 'auditors' has 1 live member; stop them before resetting its offsets\n", "\(refused.stderr)")

            // Ctrl-C commits what was printed and leaves.
            member.send(SIGINT)
            #expect(await member.waitForExit(timeout: .seconds(30)) == .exited(0), "\(member.stderr.text)")
            let listed = try await runSpool(["groups", "list"] + broker)
            #expect(listed.stdoutLines == ["auditors\tempty\t0"], "\(listed)")
            let described = try await runSpool(["groups", "describe", "auditors"] + broker)
            #expect(described.stdoutLines == ["group auditors empty generation \(try await client.describeGroup("auditors").generation) members 0",
                                              "audit-log\t0\t\(ends[0])\t\(ends[0])\t0\t-", "audit-log\t1\t\(ends[1])\t\(ends[1])\t0\t-"],
                    "\(described)")

            // The dry run (the default) plans and changes nothing.
            let plan = try await runSpool(["groups", "reset", "auditors", "--topic", "audit-log", "--to-earliest"] + broker)
            #expect(plan.termination == .exited(0), "\(plan)")
            #expect(plan.stdoutLines == ["audit-log\t0\t\(ends[0])\t0", "audit-log\t1\t\(ends[1])\t0"], "\(plan)")
            #expect(plan.stderr.contains("dry run"), "\(plan.stderr)")
            #expect(try await Self.committed(client) == ends)

            let executed = try await runSpool(["groups", "reset", "auditors", "--topic", "audit-log", "--to-earliest", "--execute"] + broker)
            #expect(executed.termination == .exited(0), "\(executed)")
            #expect(try await Self.committed(client) == [0, 0])

            let toOffset = try await runSpool(["groups", "reset", "auditors", "--topic", "audit-log", "--partition", "1", "--to-offset", "3", "--execute"] + broker)
            #expect(toOffset.stdoutLines == ["audit-log\t1\t0\t3"], "\(toOffset)")
            let shifted = try await runSpool(["groups", "reset", "auditors", "--topic", "audit-log", "--shift-by", "-2", "--execute"] + broker)
            #expect(shifted.stdoutLines == ["audit-log\t0\t0\t0", "audit-log\t1\t3\t1"], "shifts clamp at the log start: \(shifted)")
            // Record 6 (partition 0, offset 3) is the first at or after origin + 5.5 s in partition 0; record 7 (offset 3) in partition 1.
            let byTime = try await runSpool(["groups", "reset", "auditors", "--topic", "audit-log", "--execute",
                                             "--to-time", CLIReadTests.iso(CLIReadTests.origin + 5500)] + broker)
            #expect(byTime.stdoutLines == ["audit-log\t0\t0\t3", "audit-log\t1\t1\t3"], "\(byTime)")
            let toLatest = try await runSpool(["groups", "reset", "auditors", "--topic", "audit-log", "--to-latest", "--execute"] + broker)
            #expect(toLatest.termination == .exited(0), "\(toLatest)")
            #expect(try await Self.committed(client) == ends)

            // A member started after a reset resumes from the new offsets.
            _ = try await runSpool(["groups", "reset", "auditors", "--topic", "audit-log", "--partition", "0", "--to-offset", "4", "--execute"] + broker)
            let resumed = try ChildProcess(try Binaries.spool, ["tail", "audit-log", "--group", "auditors"] + broker)
            defer { resumed.killAndReap() }
            let caughtUp = await eventually(timeout: .seconds(60)) { resumed.stdout.lines.count == 1 }
            #expect(caughtUp && resumed.stdout.lines == ["0/4\t\tv8"], "\(resumed.stdout.lines); \(resumed.stderr.text)")
            resumed.send(SIGTERM)
            _ = await resumed.waitForExit(timeout: .seconds(30))

            let unknownTopic = try await runSpool(["groups", "reset", "auditors", "--topic", "nope", "--to-earliest"] + broker)
            #expect(unknownTopic.termination == .exited(1) && unknownTopic.stderr == "spool: error: topic 'nope' does not exist\n", "\(unknownTopic)")
            let unknownGroup = try await runSpool(["groups", "describe", "nobody"] + broker)
            #expect(unknownGroup.termination == .exited(1) && unknownGroup.stderr.contains("no members and no committed offsets"), "\(unknownGroup)")
        }

        /// The group's committed offsets of partitions 0 and 1.
        static func committed(_ client: SpoolClient) async throws -> [Int64] {
            try await client.committedOffsets("auditors", partitions: [TopicPartition(topic: "audit-log", partition: 0),
                                                                       TopicPartition(topic: "audit-log", partition: 1)])
                .sorted { $0.partition < $1.partition }.map(\.offset)
        }
    }
}
