import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool topics describe|delete|list --long` against a real `spoold`.
    @Suite struct CLITopicTests {
        @Test(.timeLimit(.minutes(3)))
        func describeShowsSettingsAndSizesAndDeleteRemovesATopicOnlyWhenAsked() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-topic-admin")
            // Without auto-creation, a reader that fetches after the deletion cannot bring the topic back.
            let config = directory.appending("spoold.yaml")
            try "auto.create.topics: false\n".write(toFile: config, atomically: true, encoding: .utf8)
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--config", config])
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            let client = try await daemon.makeClient()
            defer { client.close() }
            let created = try await runSpool(["topics", "create", "ledger", "--partitions", "2", "--config", "retention.ms=-1", "--config", "fsync=never"] + broker)
            #expect(created.termination == .exited(0), "\(created)")
            var bytes: [Int64] = [0, 0]
            for number in 0..<6 {
                let published = try await runSpool(["publish", "ledger", "--partition", "\(number % 2)", "entry-\(number)"] + broker)
                #expect(published.termination == .exited(0), "\(published)")
            }
            for partition in 0..<2 {
                bytes[partition] = try await client.describeTopic("ledger").partitions[partition].sizeBytes
            }

            let described = try await runSpool(["topics", "describe", "ledger"] + broker)
            #expect(described.termination == .exited(0), "\(described)")
            let lines = described.stdoutLines
            #expect(lines.first == "topic\tledger\tpartitions\t2\trecords\t6\tbytes\t\(bytes[0] + bytes[1])", "\(described.stdoutText)")
            #expect(lines.contains("setting\tretention.ms\t-1\ttopic") && lines.contains("setting\tfsync\tnever\ttopic"), "\(described.stdoutText)")
            #expect(lines.contains("setting\tretention.bytes\t-1\tbroker") && lines.contains { $0.hasPrefix("setting\tsegment.bytes\t") }, "\(described.stdoutText)")
            #expect(lines.suffix(2) == ["partition\t0\t0\t3\t\(bytes[0])\t1", "partition\t1\t0\t3\t\(bytes[1])\t1"], "\(described.stdoutText)")
            #expect(bytes.allSatisfy { $0 > 0 })
            let long = try await runSpool(["topics", "list", "--long"] + broker)
            #expect(long.stdoutLines == ["ledger\t2\t6\t\(bytes[0] + bytes[1])\t-1\t-1\tnever"], "\(long)")

            // Deleting needs --yes, and waits until no live group consumes the topic.
            let unconfirmed = try await runSpool(["topics", "delete", "ledger"] + broker)
            #expect(unconfirmed.termination == .exited(64) && unconfirmed.stderr.contains("--yes"), "\(unconfirmed)")
            let member = try ChildProcess(try Binaries.spool, ["tail", "ledger", "--group", "readers"] + broker)
            defer { member.killAndReap() }
            let consumed = await eventually(timeout: .seconds(60)) { member.stdout.lines.count == 6 }
            #expect(consumed, "\(member.stderr.text)")
            let refused = try await runSpool(["topics", "delete", "ledger", "--yes"] + broker)
            #expect(refused.termination == .exited(1), "\(refused)")
            #expect(refused.stderr == "spool: error: group 'readers' has live members consuming topic 'ledger'; stop them before deleting it\n")
            member.send(SIGINT)
            let left = await member.waitForExit(timeout: .seconds(30))
            #expect(left == .exited(0))

            // A tail waiting on the topic ends with a one-line error when it is deleted.
            let follower = try ChildProcess(try Binaries.spool, ["tail", "ledger", "--partition", "0"] + broker)
            defer { follower.killAndReap() }
            let deleted = try await runSpool(["topics", "delete", "ledger", "--yes"] + broker)
            #expect(deleted.termination == .exited(0) && deleted.stdoutText == "deleted ledger (2 partitions)\n", "\(deleted)")
            let ended = await follower.waitForExit(timeout: .seconds(60))
            await follower.waitForOutput()
            // "was deleted" if its fetch was parked, "does not exist" if it came after.
            #expect(ended == .exited(1) && follower.stderr.text.hasPrefix("spool: error: topic 'ledger'"), "\(String(describing: ended)): \(follower.stderr.text)")
            let gone = try await runSpool(["topics", "describe", "ledger"] + broker)
            #expect(gone.termination == .exited(1) && gone.stderr == "spool: error: topic 'ledger' does not exist\n", "\(gone)")
            let again = try await runSpool(["topics", "delete", "ledger", "--yes"] + broker)
            #expect(again.termination == .exited(1) && again.stderr == "spool: error: topic 'ledger' does not exist\n", "\(again)")
        }
    }
}
