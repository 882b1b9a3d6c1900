import Foundation
import Spool
import SpoolTesting
import Testing

/// A compacted topic through a real in-process server: its log cleaner runs on its own thread,
/// and the SDK's readers go past the offsets it emptied without stalling.
@Suite struct CompactedTopicTests {
    @Test(.timeLimit(.minutes(1)))
    func theCleanerShrinksATopicAndReadersSeeEachKeysLastRecordAtItsOffset() async throws {
        try await withBroker(.inproc, configure: { $0.broker.retentionCheckIntervalMilliseconds = 50 }) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            try await client.createTopic("snapshots", settings: ["cleanup.policy": "compact", "segment.bytes": "4096"])
            var written: [(offset: Int64, key: String, value: [UInt8])] = []
            for round in 0..<60 {
                for key in 0..<10 {
                    let value = Array("state \(round) of saga \(key)".utf8)
                    let result = try await client.publish(to: "snapshots", key: Array("saga-\(key)".utf8), value: value)
                    written.append((result.baseOffset, "saga-\(key)", value))
                }
            }
            let lastOfKey = Dictionary(written.map { ($0.key, $0) }) { _, later in later }
            #expect(await eventually { ((try? await client.readToEnd(of: "snapshots").count) ?? .max) < written.count / 4 },
                    "the cleaner ran by itself and removed old states")

            let kept = try await client.readToEnd(of: "snapshots")
            let byOffset = Dictionary(uniqueKeysWithValues: written.map { ($0.offset, $0) })
            #expect(kept.allSatisfy { byOffset[$0.offset]?.key == $0.key.map { String(decoding: $0, as: UTF8.self) } })
            #expect(kept.allSatisfy { byOffset[$0.offset]?.value == $0.value }, "what is kept is unchanged, at its offset")
            for (key, last) in lastOfKey {
                #expect(kept.contains { $0.offset == last.offset && $0.value == last.value }, "the last state of \(key)")
            }
            // A reader from the start passes the emptied offsets and reaches the end.
            var seen: [SpoolRecord] = []
            for try await record in client.records(from: "snapshots", startingAt: .earliest) {
                seen.append(record)
                if record.offset == written.last?.offset { break }
            }
            #expect(seen.map(\.offset) == kept.map(\.offset))
        }
    }
}
