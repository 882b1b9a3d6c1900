import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// The mission: what the SDK publishes, the CLI reads back byte for byte, before and after kill -9.
    @Suite struct MissionTests {
        static let recordCount = 10_000

        @Test(.timeLimit(.minutes(10)))
        func tenThousandRecordsReadBackByteForByteAcrossKillNine() async throws {
            var rng = SeededGenerator.logged("tenThousandRecordsReadBackByteForByteAcrossKillNine")
            let directory = try TemporaryDirectory(prefix: "spool-e2e-mission")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let topic = "mission"

            // Publish through the SDK: mostly batches, some single records.
            let client = try await daemon.makeClient()
            var sent: [OutgoingRecord] = []
            var singles = 0
            while sent.count < Self.recordCount {
                if Int.random(in: 0..<8, using: &rng) == 0 {
                    var record = rng.record()
                    let result = try await client.publish(to: topic, key: record.key, value: record.value, headers: record.headers)
                    try #require(result.baseOffset == Int64(sent.count), "single publish landed at \(result.baseOffset)")
                    #expect(result.durability == .onDisk)
                    record.timestamp = nil  // "now"
                    sent.append(record)
                    singles += 1
                } else {
                    let count = min(Int.random(in: 1...300, using: &rng), Self.recordCount - sent.count)
                    let batch = (0..<count).map { _ in
                        rng.record(timestamp: Bool.random(using: &rng) ? Int64.random(in: 0...4_102_444_800_000, using: &rng) : nil)
                    }
                    let result = try await client.publish(to: topic, records: batch)
                    try #require(result.baseOffset == Int64(sent.count), "batch landed at \(result.baseOffset), expected \(sent.count)")
                    #expect(result.count == count && result.durability == .onDisk)
                    sent += batch
                }
            }
            client.close()
            print("published \(sent.count) records (\(singles) single publishes)")

            // Read back through the CLI.
            let replayArguments = ["replay", topic, "--from-beginning", "--format", "json", "--broker", daemon.endpoint]
            let before = try await runSpool(replayArguments)
            #expect(before.termination == .exited(0), "\(before)")
            expectRecords(try JSONRecord.parseLines(before.stdoutLines), match: sent, topic: topic)

            // kill -9, restart on the same directory, read again.
            #expect(try await daemon.kill9() == .signalled(SIGKILL))
            try await daemon.start()
            let after = try await runSpool(replayArguments)
            #expect(after.termination == .exited(0), "\(after)")
            let replayed = try JSONRecord.parseLines(after.stdoutLines)
            #expect(replayed.map(\.offset) == Array(0..<Int64(Self.recordCount)), "offsets are not dense 0..<\(Self.recordCount)")
            expectRecords(replayed, match: sent, topic: topic)
            #expect(after.stdout == before.stdout, "the replay after kill -9 is not byte-identical to the one before")

            // Tail through the SDK after the restart: the stored records, then a new one.
            let reader = try await daemon.makeClient(ClientConfiguration(fetchMaxWait: .seconds(1)))
            defer { reader.close() }
            var streamed: [SpoolRecord] = []
            for try await record in reader.records(from: topic, startingAt: .earliest) {
                streamed.append(record)
                if streamed.count == Self.recordCount { break }
            }
            expectRecords(streamed, match: sent, topic: topic)
            #expect(streamed == replayed, "the SDK and the CLI disagree")

            let tailed = RecordCollector()
            let tail = Task {
                for try await record in reader.records(from: topic, startingAt: .offset(Int64(Self.recordCount - 10))) {
                    tailed.append(record)
                }
            }
            defer { tail.cancel() }
            #expect(await eventually { tailed.count == 10 })
            let fresh = OutgoingRecord(key: Array("after-restart".utf8), value: [0, 0xFF, 0x7F], headers: [RecordHeader(name: "n", value: [])])
            let result = try await reader.publish(to: topic, records: [fresh])
            #expect(result.baseOffset == Int64(Self.recordCount))
            #expect(await eventually { tailed.count == 11 }, "the tail did not see the record published after the restart")
            tail.cancel()
            expectRecords(tailed.records, match: Array(sent.suffix(10)) + [fresh], firstOffset: Int64(Self.recordCount - 10))
        }
    }
}
