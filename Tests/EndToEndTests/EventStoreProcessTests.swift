import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// Conditional appends from several processes on one key, with the broker killed (-9) and
    /// restarted in the middle: what an event store relies on.
    @Suite struct EventStoreProcessTests {
        static let key = "account-1"

        /// Three `spool bench writers` processes, two writers each, append 60 versions apiece to
        /// one key, each expecting the last offset it read. spoold is killed -9 once the key has
        /// some versions and restarted. Afterwards every version is stored exactly once, each
        /// record names the offset of the one before it (no gap, no duplicate, no lost update),
        /// and the key index answers the same history after a restart.
        @Test(.timeLimit(.minutes(5)))
        func writersOfOneKeyInSeveralProcessesSurviveAKilledBroker() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-events")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let processes = 3, writers = 2, versions = 60
            let results = Task {
                try await withThrowingTaskGroup(of: CommandResult.self) { group in
                    for number in 0..<processes {
                        group.addTask {
                            try await runSpool(["bench", "writers", "--broker", daemon.endpoint, "--topic", "accounts", "--key", Self.key,
                                                "--writers", "\(writers)", "--versions", "\(versions)", "--name", "p\(number)", "--patience", "90"],
                                               timeout: .seconds(240))
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            // Kill the broker once the writers are well under way.
            let watcher = try await daemon.makeClient()
            #expect(await eventually(timeout: .seconds(60)) {
                ((try? await watcher.records(ofKey: Array(Self.key.utf8), in: "accounts").records.count) ?? 0) >= 60
            })
            let beforeKill = try await watcher.records(ofKey: Array(Self.key.utf8), in: "accounts").records.count
            watcher.close()
            try await daemon.kill9()
            #expect(beforeKill < processes * writers * versions, "the broker is killed while the writers write (\(beforeKill) versions stored)")
            try await Task.sleep(for: .milliseconds(300))
            try await daemon.start()

            for result in try await results.value {
                #expect(result.termination == .exited(0), "\(result)")
                print("writers: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            try await Self.checkHistory(daemon, names: (0..<processes).flatMap { process in (0..<writers).map { "p\(process)-\($0)" } },
                                        versions: versions)
            try await daemon.kill9()
            try await daemon.start()
            try await Self.checkHistory(daemon, names: (0..<processes).flatMap { process in (0..<writers).map { "p\(process)-\($0)" } },
                                        versions: versions)
        }

        /// Each record is "NAME N after L" with L the offset of the key's record before it; each
        /// writer's versions 0..<versions appear once each, in order.
        static func checkHistory(_ daemon: Daemon, names: [String], versions: Int) async throws {
            let client = try await daemon.makeClient()
            defer { client.close() }
            let history = try await client.records(ofKey: Array(key.utf8), in: "accounts")
            var previous: Int64 = -1
            var written: [String: [Int]] = [:]
            for record in history.records {
                let fields = String(decoding: record.value, as: UTF8.self).split(separator: " ")
                try #require(fields.count == 4 && fields[2] == "after", "record \(record.offset): \(fields)")
                #expect(Int64(fields[3]) == previous, "record \(record.offset) follows \(fields[3]), the record before is at \(previous)")
                written[String(fields[0]), default: []].append(Int(fields[1]) ?? -1)
                previous = record.offset
            }
            #expect(history.records.count == names.count * versions)
            for name in names {
                #expect(written[name] == Array(0..<versions), "\(name) wrote \(written[name] ?? [])")
            }
            #expect(history.lastOffset == previous)
            // Nothing else is in the partition: the key's history is all of it, offsets dense.
            let all = try await client.readToEnd(of: "accounts")
            #expect(all.map(\.offset) == history.records.map(\.offset))
        }
    }
}
