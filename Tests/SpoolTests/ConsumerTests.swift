import Foundation
import Spool
import SpoolTesting
import Synchronization
import Testing

/// Group consumers against a real in-process broker: sharing, handoff, commits, restarts.
@Suite(.timeLimit(.minutes(3)))
struct ConsumerTests {
    static let fast = ConsumerConfiguration(sessionTimeout: .milliseconds(1500), autoCommitInterval: .milliseconds(100))
    static let clientSettings = ClientConfiguration(requestTimeout: .seconds(5), fetchMaxWait: .milliseconds(200))

    /// Publishes `count` keyed records spread over the topic's partitions; returns their values.
    private func publish(_ client: SpoolClient, _ topic: String, count: Int, prefix: String = "r") async throws -> [String] {
        let values = (0..<count).map { "\(prefix)-\($0)" }
        for chunk in stride(from: 0, to: count, by: 50) {
            for value in values[chunk..<min(chunk + 50, count)] {
                try await client.publish(to: topic, key: Array(value.utf8), value: Array(value.utf8))
            }
        }
        return values
    }

    /// Consumes into `collected` until cancelled or closed.
    private func consume(_ consumer: Consumer, into collected: RecordCollector, delay: Duration = .zero) -> Task<Void, Error> {
        Task {
            for try await record in consumer {
                collected.append(record)
                if delay > .zero { try await Task.sleep(for: delay) }
            }
        }
    }

    @Test func threeConsumersShareSixPartitionsAndEveryRecordIsConsumedOnce() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient(configuration: Self.clientSettings)
            try await client.createTopic("orders", partitions: 6)
            let consumers = try (0..<3).map { _ in try Consumer(client: client, group: "workers", topics: ["orders"], configuration: Self.fast) }
            let collectors = consumers.map { _ in RecordCollector() }
            let tasks = zip(consumers, collectors).map { consume($0, into: $1) }
            #expect(await eventually { consumers.map(\.assignment.count) == [2, 2, 2] }, "assignments: \(consumers.map(\.assignment))")
            let all = Set(consumers.flatMap(\.assignment))
            #expect(all.count == 6, "the three assignments are distinct")

            let values = try await publish(client, "orders", count: 600)
            #expect(await eventually { collectors.map(\.count).reduce(0, +) >= 600 })
            for (consumer, collector) in zip(consumers, collectors) {
                let partitions = Set(collector.records.map { TopicPartition(topic: $0.topic, partition: $0.partition) })
                #expect(partitions.isSubset(of: Set(consumer.assignment)), "a consumer got records of a partition it does not own")
            }
            let consumed = collectors.flatMap(\.records)
            #expect(consumed.count == 600, "no duplicates without failures")
            #expect(Set(consumed.map { String(decoding: $0.value, as: UTF8.self) }) == Set(values))
            for consumer in consumers { await consumer.close() }
            for task in tasks { _ = await task.result }

            // Every consumed offset was committed at close: the group's lag is 0.
            let described = try await client.describeGroup("workers")
            #expect(described.members.isEmpty)
            #expect(described.partitions.count == 6)
            #expect(described.partitions.allSatisfy { $0.lag == 0 }, "\(described.partitions)")
            client.close()
        }
    }

    @Test func closeCommitsAndTheNextMemberResumesAfterTheLastProcessedRecord() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient(configuration: Self.clientSettings)
            let values = try await publish(client, "events", count: 50)
            var manual = Self.fast
            manual.autoCommit = false
            let first = try Consumer(client: client, group: "g", topics: ["events"], configuration: manual)
            var seen: [String] = []
            for try await record in first {
                seen.append(String(decoding: record.value, as: UTF8.self))
                if seen.count == 20 {
                    try await first.commit(record)
                    break
                }
            }
            await first.close()
            #expect(try await client.committedOffsets("g") == [CommittedOffset(partition: TopicPartition(topic: "events", partition: 0), offset: 20)])

            let second = try Consumer(client: client, group: "g", topics: ["events"], configuration: Self.fast)
            var rest: [String] = []
            for try await record in second {
                rest.append(String(decoding: record.value, as: UTF8.self))
                if rest.count == 30 { break }
            }
            await second.close()
            #expect(seen + rest == values, "the second member starts right after the committed record")
            #expect(try await client.committedOffsets("g").map(\.offset) == [50], "close committed the last record returned")
            client.close()
        }
    }

    @Test func aMemberThatStopsHeartbeatingLosesItsPartitionsAndNothingIsLost() async throws {
        try await withBroker(.inproc) { broker in
            let admin = try await broker.makeClient(configuration: Self.clientSettings)
            try await admin.createTopic("orders", partitions: 6)
            let values = try await publish(admin, "orders", count: 300)
            // The doomed member has its own connection, which is cut without leaving the group.
            let doomedClient = try await broker.makeClient(configuration: Self.clientSettings)
            let doomed = try Consumer(client: doomedClient, group: "workers", topics: ["orders"], configuration: Self.fast)
            let survivorClient = try await broker.makeClient(configuration: Self.clientSettings)
            let survivor = try Consumer(client: survivorClient, group: "workers", topics: ["orders"], configuration: Self.fast)
            let doomedRecords = RecordCollector(), survivorRecords = RecordCollector()
            let doomedTask = consume(doomed, into: doomedRecords, delay: .milliseconds(2))
            let survivorTask = consume(survivor, into: survivorRecords, delay: .milliseconds(2))
            #expect(await eventually { doomed.assignment.count == 3 && survivor.assignment.count == 3 })
            #expect(await eventually { doomedRecords.count >= 20 })
            doomedClient.close()  // no more heartbeats, fetches or commits
            doomedTask.cancel()
            #expect(await eventually(timeout: .seconds(15)) { survivor.assignment.count == 6 }, "the partitions moved within the session timeout")
            let more = try await publish(admin, "orders", count: 100, prefix: "late")
            #expect(await eventually { Set((doomedRecords.records + survivorRecords.records).map(\.value)).count == 400 })
            let consumed = (doomedRecords.records + survivorRecords.records).map { String(decoding: $0.value, as: UTF8.self) }
            #expect(Set(consumed) == Set(values + more), "every record was processed")
            // Duplicates only for records the dead member had not committed.
            let duplicates = Dictionary(grouping: consumed, by: { $0 }).filter { $0.value.count > 1 }.keys
            let doomedValues = Set(doomedRecords.records.map { String(decoding: $0.value, as: UTF8.self) })
            #expect(duplicates.allSatisfy { doomedValues.contains($0) }, "a duplicate that the dead member never saw")
            await survivor.close()
            _ = await survivorTask.result
            survivorClient.close()
            admin.close()
        }
    }

    @Test func aSlowHandlerBoundsTheBufferAndAResetPolicyApplies() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient(configuration: Self.clientSettings)
            _ = try await publish(client, "slow", count: 200)
            var settings = Self.fast
            settings.maxBufferedRecords = 10
            let consumer = try Consumer(client: client, group: "slow-group", topics: ["slow"], configuration: settings)
            var count = 0
            for try await _ in consumer {
                count += 1
                #expect(consumer.bufferedRecordCount <= 10)
                if count == 1 { try await Task.sleep(for: .milliseconds(300)) }  // fetchers fill the buffer meanwhile
                if count == 1 { #expect(consumer.bufferedRecordCount == 10, "fetching filled the buffer to the bound and paused") }
                if count == 200 { break }
            }
            await consumer.close()

            var latest = Self.fast
            latest.autoOffsetReset = .latest
            let late = try Consumer(client: client, group: "latecomers", topics: ["slow"], configuration: latest)
            #expect(await eventually { late.assignment.count == 1 })
            try await client.publish(to: "slow", value: Array("new".utf8))
            var iterator = late.makeAsyncIterator()
            #expect(try await iterator.next().map { String(decoding: $0.value, as: UTF8.self) } == "new", "latest skips what was there")
            await late.close()

            var strict = Self.fast
            strict.autoOffsetReset = .error
            let failing = try Consumer(client: client, group: "strict", topics: ["slow"], configuration: strict)
            let error = await spoolError { for try await _ in failing {} }
            #expect(error?.code == .offsetOutOfRange)
            await failing.close()
            client.close()
        }
    }

    @Test(arguments: InProcessBroker.Transport.allCases)
    func consumersCarryOnThroughABrokerRestart(transport: InProcessBroker.Transport) async throws {
        var broker = try InProcessBroker(transport: transport) { $0.broker.groupRejoinGraceMilliseconds = 1_000 }
        let client = try await broker.makeClient(configuration: Self.clientSettings)
        try await client.createTopic("orders", partitions: 4)
        let first = try await publish(client, "orders", count: 200)
        let consumer = try Consumer(client: client, group: "g", topics: ["orders"], configuration: Self.fast)
        let collected = RecordCollector()
        let task = consume(consumer, into: collected)
        #expect(await eventually { collected.count >= 200 })
        #expect(await eventually { (try? await client.describeGroup("g").partitions.allSatisfy { $0.lag == 0 }) ?? false },
                "auto-commit caught up")
        broker = try await broker.restart()
        let second = try await publish(client, "orders", count: 200, prefix: "after")
        #expect(await eventually(timeout: .seconds(30)) { collected.count >= 400 }, "got \(collected.count) of 400")
        #expect(consumer.assignment.count == 4, "membership was restored")
        let consumed = collected.records.map { String(decoding: $0.value, as: UTF8.self) }
        #expect(Set(consumed) == Set(first + second))
        #expect(consumed.count == 400, "committed before the restart, so nothing comes twice")
        await consumer.close()
        _ = await task.result
        client.close()
        await broker.stop()
    }

    @Test func badArgumentsAreRefusedAtOnce() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            #expect(await spoolError { _ = try Consumer(client: client, group: "g", topics: []) }?.code == .invalidArgument)
            #expect(await spoolError { _ = try Consumer(client: client, group: "a/b", topics: ["t"]) }?.code == .invalidArgument)
            #expect(await spoolError { _ = try Consumer(client: client, group: "g", topics: ["../x"]) }?.code == .invalidTopicName)
            client.close()
        }
    }
}
