import Foundation
import Spool
import SpoolStorage
import SpoolTesting
import Testing

/// Publishing and reading back through the SDK against a real in-process broker, over both transports.
@Suite struct ClientRoundTripTests {
    private static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    @Test(.timeLimit(.minutes(2)), arguments: InProcessBroker.Transport.allCases)
    func publishReturnsDenseOffsetsAndReadsBackByteIdentical(transport: InProcessBroker.Transport) async throws {
        var rng = SeededGenerator.logged("publishReturnsDenseOffsetsAndReadsBackByteIdentical(\(transport))")
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let topic = "round-trip"
            var sent: [OutgoingRecord] = []
            let before = Self.nowMilliseconds()
            for round in 0..<30 {
                if round % 3 == 0 {
                    // One record through the single-record call: its timestamp is "now".
                    var record = rng.record()
                    let result = try await client.publish(to: topic, key: record.key, value: record.value, headers: record.headers)
                    #expect(result.baseOffset == Int64(sent.count))
                    #expect(result.count == 1 && result.lastOffset == result.baseOffset)
                    #expect(result.partition == 0 && result.topic == topic)
                    #expect(result.durability == .onDisk)
                    record.timestamp = nil
                    sent.append(record)
                } else {
                    let batch = (0..<Int.random(in: 1...40, using: &rng)).map { _ in
                        rng.record(timestamp: Bool.random(using: &rng) ? Int64.random(in: 0...4_000_000_000_000, using: &rng) : nil)
                    }
                    let result = try await client.publish(to: topic, records: batch)
                    #expect(result.baseOffset == Int64(sent.count))
                    #expect(result.count == batch.count)
                    #expect(result.lastOffset == Int64(sent.count + batch.count - 1))
                    #expect(result.durability == .onDisk)
                    sent += batch
                }
            }
            let after = Self.nowMilliseconds()

            let fetched = try await client.readToEnd(of: topic)
            expectRecords(fetched, match: sent)
            for (record, original) in zip(fetched, sent) where original.timestamp == nil {
                #expect((before...after).contains(record.timestamp), "timestamp \(record.timestamp) of offset \(record.offset) is not 'now'")
            }
            #expect(fetched.allSatisfy { $0.topic == topic && $0.partition == 0 })

            var streamed: [SpoolRecord] = []
            for try await record in client.records(from: topic, startingAt: .earliest) {
                streamed.append(record)
                if streamed.count == sent.count { break }
            }
            #expect(streamed == fetched)

            let start = Int.random(in: 0..<sent.count, using: &rng)
            var fromOffset: [SpoolRecord] = []
            for try await record in client.records(from: topic, startingAt: .offset(Int64(start))) {
                fromOffset.append(record)
                if record.offset == Int64(sent.count - 1) { break }
            }
            expectRecords(fromOffset, match: Array(sent[start...]), firstOffset: Int64(start))

            let info = try await client.topics([topic])
            #expect(info.map(\.name) == [topic])
            #expect(info.first?.partitions.map(\.partition) == [0])
            #expect(info.first?.partitions.first?.earliestOffset == 0)
            #expect(info.first?.partitions.first?.latestOffset == Int64(sent.count))
            #expect(try await client.offset(of: topic, .earliest) == 0)
            #expect(try await client.offset(of: topic, .latest) == Int64(sent.count))
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func startsFromTheFirstRecordAtOrAfterATimestamp(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let topic = "by-time"
            // Offsets 0...9: one record per batch at 1000, 2000, …, 10000.
            for number in 1...10 {
                try await client.publish(to: topic, records: [OutgoingRecord(value: Array("t\(number)".utf8), timestamp: Int64(number) * 1000)])
            }
            // Offsets 10, 11, 12: one batch at 20000, 21000, 22000.
            try await client.publish(to: topic, records: (0..<3).map {
                OutgoingRecord(value: Array("b\($0)".utf8), timestamp: 20_000 + Int64($0) * 1000)
            })

            func first(at timestamp: Int64) async throws -> SpoolRecord? {
                for try await record in client.records(from: topic, startingAt: .timestamp(timestamp)) { return record }
                return nil
            }
            #expect(try await first(at: 0)?.offset == 0)
            #expect(try await first(at: 5000)?.offset == 4)
            #expect(try await first(at: 4500)?.offset == 4)
            #expect(try await first(at: 10_001)?.offset == 10)
            #expect(try await client.offset(of: topic, .timestamp(4500)) == 4)
            #expect(try await client.offset(of: topic, .timestamp(99_999)) == 13, "no record that late: the latest offset")
            // Inside one batch: the first *record* at or after the time, as documented.
            #expect(try await client.offset(of: topic, .timestamp(21_000)) == 11)
            #expect(try await client.offset(of: topic, .timestamp(21_500)) == 12)
            let inside = try await first(at: 21_000)
            #expect(inside?.offset == 11)
            #expect(inside?.timestamp == 21_000)
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func latestSeesOnlyRecordsPublishedAfterTheStreamStarts(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient(configuration: ClientConfiguration(fetchMaxWait: .milliseconds(500)))
            defer { client.close() }
            let topic = "live"
            try await client.publish(to: topic, records: (0..<5).map { OutgoingRecord(value: Array("old-\($0)".utf8)) })

            let collected = RecordCollector()
            let consumer = Task {
                for try await record in client.records(from: topic, startingAt: .latest) { collected.append(record) }
            }
            defer { consumer.cancel() }
            // The stream resolves "latest" when it starts; publish until it has seen something.
            var published: [Int64: String] = [:]
            var number = 0
            let started = try await eventually {
                let value = "new-\(number)"
                published[try await client.publish(to: topic, value: Array(value.utf8)).baseOffset] = value
                number += 1
                return collected.count > 0
            }
            try #require(started, "the .latest stream saw nothing")
            for final in 0..<3 {
                let value = "final-\(final)"
                published[try await client.publish(to: topic, value: Array(value.utf8)).baseOffset] = value
            }
            let end = try await client.offset(of: topic, .latest)
            #expect(await eventually { collected.records.last?.offset == end - 1 })
            consumer.cancel()
            _ = await consumer.result

            let records = collected.records
            let first = try #require(records.first)
            #expect(first.offset >= 5, "a .latest stream returned a record published before it started")
            #expect(records.map(\.offset) == Array(first.offset..<end), "gaps or duplicates")
            for record in records {
                #expect(published[record.offset] == String(decoding: record.value, as: UTF8.self))
            }
        }
    }

    @Test(.timeLimit(.minutes(2)), arguments: InProcessBroker.Transport.allCases)
    func concurrentPublishesGetUniqueDenseOffsets(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let topic = "concurrent"
            let tasks = 50, perTask = 20
            let acknowledged = try await withThrowingTaskGroup(of: [(Int64, String)].self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        var results: [(Int64, String)] = []
                        for number in 0..<perTask {
                            let value = "task-\(task)-\(number)"
                            let result = try await client.publish(to: topic, value: Array(value.utf8))
                            #expect(result.durability == .onDisk)
                            results.append((result.baseOffset, value))
                        }
                        return results
                    }
                }
                return try await group.reduce(into: [], +=)
            }
            let total = tasks * perTask
            #expect(acknowledged.count == total)
            #expect(Set(acknowledged.map(\.0)) == Set(0..<Int64(total)), "offsets are not unique and dense")
            let expected = Dictionary(acknowledged, uniquingKeysWith: { first, _ in first })
            let records = try await client.readToEnd(of: topic)
            #expect(records.map(\.offset) == Array(0..<Int64(total)))
            for record in records {
                #expect(expected[record.offset] == String(decoding: record.value, as: UTF8.self), "offset \(record.offset)")
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func keyedRecordsGoToTheKafkaPartitionAndUnkeyedOnesRoundRobin(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            try await client.createTopic("keyed", partitions: 4)
            var expectedKeys: [Int32: [[UInt8]]] = [:]
            for number in 0..<40 {
                let key = Array("customer-\(number)".utf8)
                let result = try await client.publish(to: "keyed", key: key, value: [UInt8(number)])
                let partition = Partitioner.partition(forKey: key, partitionCount: 4)
                #expect(result.partition == partition, "key customer-\(number)")
                expectedKeys[partition, default: []].append(key)
            }
            for partition in Int32(0)..<4 {
                let records = try await client.readToEnd(of: "keyed", partition: partition)
                #expect(records.map(\.key) == (expectedKeys[partition] ?? []).map { Optional($0) })
                #expect(records.allSatisfy { $0.partition == partition })
            }

            try await client.createTopic("spread", partitions: 4)
            var perPartition: [Int32: Int] = [:]
            for number in 0..<8 {
                perPartition[try await client.publish(to: "spread", value: [UInt8(number)]).partition, default: 0] += 1
            }
            #expect(perPartition == [0: 2, 1: 2, 2: 2, 3: 2])
            let info = try #require(try await client.topics(["spread"]).first)
            #expect(info.partitions.map(\.latestOffset) == [2, 2, 2, 2])
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: [
        (FsyncPolicy.interval(milliseconds: 20), Durability.syncScheduled), (FsyncPolicy.never, Durability.pageCache),
    ])
    func acknowledgementStatesTheConfiguredDurability(policy: FsyncPolicy, durability: Durability) async throws {
        try await withBroker(.inproc, configure: { $0.broker.log.fsync = policy }) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let result = try await client.publish(to: "relaxed", records: [OutgoingRecord(value: [1]), OutgoingRecord(value: [2])])
            #expect(result.durability == durability)
            #expect(try await client.readToEnd(of: "relaxed").map(\.value) == [[1], [2]])
        }
    }
}
