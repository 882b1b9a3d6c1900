import Foundation
import Spool
import SpoolTesting
import SpoolWire
import Testing

/// Conditional sends and reads by key through the SDK against a real in-process broker: the
/// expected-version writes of an event store.
@Suite struct KeyedSendTests {
    /// Writers that each read the key, then append "version N follows N-1" conditionally, retrying
    /// on conflict: every version is written exactly once and each record names the offset of the
    /// one before it; the losers got conflicts carrying the current last offset.
    @Test(.timeLimit(.minutes(2)), arguments: InProcessBroker.Transport.allCases)
    func concurrentWritersOfOneKeyWriteEachVersionOnce(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let setup = try await broker.makeClient()
            defer { setup.close() }
            try await setup.createTopic("accounts", partitions: 3)
            let key = Array("account-42".utf8)
            let writers = 4, versionsPerWriter = 25
            let conflicts = try await withThrowingTaskGroup(of: Int.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        let client = try await broker.makeClient()
                        defer { client.close() }
                        let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .zero))
                        var conflicts = 0
                        var written = 0
                        var last = try await client.records(ofKey: key, in: "accounts").lastOffset
                        while written < versionsPerWriter {
                            do {
                                let value = "writer \(writer) after \(last ?? -1)"
                                let result = try await producer.send(to: "accounts", key: key, records: [OutgoingRecord(value: Array(value.utf8))],
                                                                     ifLastOffsetIs: last)
                                last = result.baseOffset
                                written += 1
                            } catch let error as SpoolError where error.code == .keyConflict {
                                conflicts += 1
                                let current = try #require(error.details["lastOffset"])
                                last = current >= 0 ? current : nil
                            }
                        }
                        try await producer.close()
                        return conflicts
                    }
                }
                return try await group.reduce(0, +)
            }
            let history = try await setup.records(ofKey: key, in: "accounts")
            #expect(history.records.count == writers * versionsPerWriter, "every version once, no duplicates")
            var previous: Int64 = -1
            for record in history.records {
                let value = String(decoding: record.value, as: UTF8.self)
                #expect(value.hasSuffix("after \(previous)"), "record at \(record.offset) says '\(value)', the one before is at \(previous)")
                previous = record.offset
            }
            #expect(history.lastOffset == previous)
            #expect(conflicts > 0, "concurrent writers of one key conflict")
            // The partition a keyed send uses holds it; the others hold nothing.
            var partitionCounts: [Int] = []
            for partition in Int32(0)..<3 { partitionCounts.append(try await setup.fetch(from: "accounts", partition: partition, offset: 0).records.count) }
            #expect(partitionCounts.sorted() == [0, 0, writers * versionsPerWriter])
        }
    }

    /// A key's records among many others, read in pages through the key index, from an offset.
    @Test(.timeLimit(.minutes(1)))
    func aKeysRecordsAreReadFromAnOffsetAmongOthers() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient(configuration: ClientConfiguration(fetchMaxBytes: 256))
            defer { client.close() }
            let producer = try Producer(client: client)
            for number in 0..<300 {
                try await producer.enqueue(to: "events", key: Array("order-\(number % 10)".utf8), value: Array("event \(number)".utf8))
            }
            try await producer.flush()
            let all = try await client.records(ofKey: Array("order-3".utf8), in: "events")
            #expect(all.records.map { String(decoding: $0.value, as: UTF8.self) } == stride(from: 3, to: 300, by: 10).map { "event \($0)" })
            #expect(all.lastOffset == all.records.last?.offset)
            let later = try await client.records(ofKey: Array("order-3".utf8), in: "events", from: all.records[20].offset)
            #expect(later.records == Array(all.records[20...]))
            let none = try await client.records(ofKey: Array("nobody".utf8), in: "events")
            #expect(none.records.isEmpty && none.lastOffset == nil)
        }
    }
}
