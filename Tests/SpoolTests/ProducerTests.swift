import Foundation
import Logging
import Spool
import SpoolServer
import SpoolTesting
import SpoolWire
import Synchronization
import Testing

/// The producer against a real in-process broker: every record delivered, in order per key and
/// partition, batched, bounded, stamped for idempotence, retried across restarts, and every
/// failure reported with the right code.
@Suite struct ProducerTests {
    @Test(.timeLimit(.minutes(2)), arguments: InProcessBroker.Transport.allCases)
    func deliversEveryRecordInKeyOrderAcrossPartitions(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let topic = "many"
            try await client.createTopic(topic, partitions: 4)
            let producer = try Producer(client: client)
            let tasks = 4, keysPerTask = 10, perKey = 400
            // Each task owns its keys and enqueues their records in order, concurrently with the others.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        for number in 0..<perKey {
                            for key in 0..<keysPerTask {
                                let name = "k\(task)-\(key)"
                                try await producer.enqueue(to: topic, key: Array(name.utf8), value: Array("\(name)|\(number)".utf8))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            // Records sent one by one come back with their own offsets.
            var sent: [PublishResult] = []
            for number in 0..<20 {
                sent.append(try await producer.send(to: topic, key: Array("single".utf8), value: Array("single|\(number)".utf8)))
            }
            try await producer.flush()

            var numbersByKey: [String: [Int]] = [:]
            var total = 0
            for partition in Int32(0)..<4 {
                let records = try await client.readToEnd(of: topic, partition: partition)
                total += records.count
                for record in records {
                    let text = String(decoding: record.value, as: UTF8.self)
                    let parts = text.split(separator: "|")
                    let key = String(parts[0])
                    #expect(record.key == Array(key.utf8))
                    #expect(Partitioner.partition(forKey: Array(key.utf8), partitionCount: 4) == partition, "\(key) in partition \(partition)")
                    numbersByKey[key, default: []].append(Int(parts[1])!)
                }
            }
            #expect(total == tasks * keysPerTask * perKey + 20)
            #expect(numbersByKey.count == tasks * keysPerTask + 1)
            for (key, numbers) in numbersByKey {
                let expected = key == "single" ? Array(0..<20) : Array(0..<perKey)
                #expect(numbers == expected, "key \(key): out of order, missing or doubled")
            }
            let singlePartition = Partitioner.partition(forKey: Array("single".utf8), partitionCount: 4)
            #expect(sent.allSatisfy { $0.partition == singlePartition && $0.count == 1 && $0.topic == topic })
            #expect(zip(sent, sent.dropFirst()).allSatisfy { $0.baseOffset < $1.baseOffset })
            let stored = try await client.readToEnd(of: topic, partition: singlePartition)
            for result in sent {
                let record = try #require(stored.first { $0.offset == result.baseOffset })
                #expect(record.key == Array("single".utf8), "send returned offset \(result.baseOffset), which holds another record")
            }
            try await producer.close()
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func unkeyedRecordsSpreadOverPartitionsInWholeBatches() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            try await client.createTopic("spread", partitions: 3)
            let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .seconds(3600), batchBytes: 4096))
            for number in 0..<3000 { try await producer.enqueue(to: "spread", value: Array("\(number)".utf8) + Array(repeating: 0, count: 60)) }
            try await producer.close()
            var counts: [Int] = []
            var numbers: [Int] = []
            for partition in Int32(0)..<3 {
                let records = try await client.readToEnd(of: "spread", partition: partition)
                counts.append(records.count)
                numbers += records.map { Int(String(decoding: $0.value.prefix { $0 != 0 }, as: UTF8.self))! }
            }
            #expect(numbers.sorted() == Array(0..<3000), "records lost or doubled")
            #expect(counts.allSatisfy { $0 > 500 }, "sticky partitioning should move on after each batch: \(counts)")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aLoneRecordLeavesAfterTheLingerAndFlushSendsAtOnce() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let lingering = try Producer(client: client, configuration: ProducerConfiguration(linger: .milliseconds(100)))
            try await lingering.enqueue(to: "linger", value: [1])
            // No flush: the linger alone sends it.
            #expect(await eventually(timeout: .seconds(20)) { (try? await client.offset(of: "linger", .latest)) == 1 })

            // A linger of an hour: only flush can have sent it.
            let patient = try Producer(client: client, configuration: ProducerConfiguration(linger: .seconds(3600)))
            try await patient.enqueue(to: "linger", value: [2])
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await client.offset(of: "linger", .latest) == 1, "a batch left before its linger")
            try await patient.flush()
            #expect(try await client.readToEnd(of: "linger").map(\.value) == [[1], [2]])
            try await lingering.close()
            try await patient.close()
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func recordsArePackedIntoFullBatches() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let batchBytes = 16 * 1024
            let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .seconds(3600), batchBytes: batchBytes))
            let values = (0..<1000).map { Array("record-\($0)".utf8) + Array(repeating: UInt8($0 % 251), count: 90) }
            for value in values { try await producer.enqueue(to: "packed", value: value) }
            try await producer.flush()
            let headers = try storedBatchHeaders(broker, topic: "packed")
            let recordBytes = values.reduce(0) { $0 + $1.count }
            #expect(headers.reduce(0) { $0 + Int($1.recordCount) } == 1000)
            #expect(headers.count <= recordBytes / (batchBytes / 2) + 1, "\(headers.count) batches for \(recordBytes) bytes")
            #expect(headers.allSatisfy { $0.totalSize <= batchBytes })
            #expect(headers.dropLast().allSatisfy { $0.totalSize > batchBytes - 200 }, "batches closed before they were full: \(headers.map(\.totalSize))")
            #expect(try await client.readToEnd(of: "packed").map(\.value) == values)
            try await producer.close()
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func enqueueWaitsForRoomAndDropsNothing() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let bound = 4096
            // With an hour of linger nothing leaves until a flush, so the bound must stop the caller.
            let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .seconds(3600), maxBytesInFlight: bound))
            let total = 200
            let buffered = Atomic<Int>(0)
            let values = (0..<total).map { Array("value-\($0)|".utf8) + Array(repeating: 7, count: 150) }
            let writer = Task {
                for value in values {
                    try await producer.enqueue(to: "bounded", value: value)
                    buffered.add(1, ordering: .relaxed)
                }
            }
            // Wait until the writer has started and then stopped making progress.
            try #require(await eventually { buffered.load(ordering: .relaxed) > 0 })
            var stalledAt = -1
            while stalledAt != buffered.load(ordering: .relaxed) {
                stalledAt = buffered.load(ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(stalledAt > 0 && stalledAt < total, "enqueue did not wait for room (\(stalledAt) of \(total) buffered)")
            #expect(stalledAt * 160 <= bound + 200, "\(stalledAt) records exceed the bound of \(bound) bytes")
            // Each flush sends what is buffered; the acknowledgements make room for the next ones.
            var flushes = 0
            while buffered.load(ordering: .relaxed) < total {
                try await producer.flush()
                flushes += 1
                try await Task.sleep(for: .milliseconds(5))
            }
            try await writer.value
            try await producer.flush()
            #expect(flushes > 3)
            #expect(try await client.readToEnd(of: "bounded").map(\.value) == values)
            try await producer.close()
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func sendWaitsForRoomToo() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .milliseconds(1), maxBytesInFlight: 1000))
            let results = try await withThrowingTaskGroup(of: PublishResult.self) { group in
                for number in 0..<100 {
                    group.addTask { try await producer.send(to: "bounded-send", value: Array(repeating: UInt8(number), count: 300)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(results.map(\.baseOffset)) == Set(0..<100))
            let stored = try await client.readToEnd(of: "bounded-send")
            #expect(stored.map { Int($0.value[0]) }.sorted() == Array(0..<100))
            try await producer.close()
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aCancelledCallerStopsWaitingForRoom() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .seconds(3600), maxBytesInFlight: 1000))
            try await producer.enqueue(to: "cancelled", value: Array(repeating: 1, count: 400))
            try await producer.enqueue(to: "cancelled", value: Array(repeating: 2, count: 400))
            let waiting = Task { try await producer.enqueue(to: "cancelled", value: Array(repeating: 3, count: 400)) }
            try await Task.sleep(for: .milliseconds(100))
            waiting.cancel()
            let error = try #require(await spoolError { try await waiting.value })
            #expect(error.code == .cancelled, "\(error)")
            let alreadyCancelled = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return await spoolError { try await producer.send(to: "cancelled", value: Array(repeating: 4, count: 400)) }
            }
            #expect(await alreadyCancelled.value?.code == .cancelled)
            try await producer.close()
            #expect(try await client.readToEnd(of: "cancelled").map { $0.value[0] } == [1, 2], "a cancelled record was stored")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func batchesCarryTheProducerIDAndConsecutiveSequences() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            try await client.createTopic("stamped", partitions: 3)
            let configuration = ProducerConfiguration(linger: .milliseconds(2), batchBytes: 2048)
            let first = try Producer(client: client, configuration: configuration)
            let second = try Producer(client: client, configuration: configuration)
            for number in 0..<3000 {
                let producer = number % 2 == 0 ? first : second
                try await producer.enqueue(to: "stamped", key: Array("key-\(number % 17)".utf8), value: Array(repeating: 1, count: 100))
            }
            try await first.flush()
            try await second.flush()
            var producerIDs: Set<Int64> = []
            var batches = 0
            for partition in Int32(0)..<3 {
                var nextSequence: [Int64: Int64] = [:]
                for header in try storedBatchHeaders(broker, topic: "stamped", partition: partition) {
                    batches += 1
                    #expect(header.producerID >= 0 && header.producerEpoch >= 0 && header.baseSequence >= 0, "\(header)")
                    producerIDs.insert(header.producerID)
                    let expected = nextSequence[header.producerID] ?? 0
                    #expect(Int64(header.baseSequence) == expected, "producer \(header.producerID) in partition \(partition): sequence \(header.baseSequence), expected \(expected)")
                    nextSequence[header.producerID] = Int64(header.baseSequence) + Int64(header.recordCount)
                }
            }
            #expect(producerIDs.count == 2, "each producer has its own id")
            #expect(batches > 6)

            let plain = try Producer(client: client, configuration: ProducerConfiguration(idempotent: false))
            try await plain.send(to: "unstamped", value: [1])
            let header = try #require(try storedBatchHeaders(broker, topic: "unstamped").first)
            #expect(header.producerID == -1 && header.producerEpoch == -1 && header.baseSequence == -1)
            for producer in [first, second, plain] { try await producer.close() }
        }
    }

    /// Restarts the broker twice while records pour in. Every record must be stored, and the
    /// first occurrences of each key's records must be in order. Duplicates are tolerated here:
    /// exactly once depends on the broker recognising retried sequences, which its own tests cover.
    @Test(.timeLimit(.minutes(3)), arguments: InProcessBroker.Transport.allCases)
    func retriesAcrossBrokerRestartsKeepEveryRecordInOrder(transport: InProcessBroker.Transport) async throws {
        var broker = try InProcessBroker(transport: transport)
        let client: SpoolClient
        do {
            client = try await broker.makeClient(configuration: ClientConfiguration(requestTimeout: .seconds(2)))
        } catch {
            await broker.stop()
            throw error
        }
        defer { client.close() }
        let topic = "restarting"
        let keys = ["a", "b", "c", "d", "e"]
        let perKey = 800
        do {
            try await client.createTopic(topic, partitions: 2)
            let retries = LogCounter(message: "a batch got no answer (the broker may have stored it); retrying")
            let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .milliseconds(2), batchBytes: 4096,
                                                                                                deliveryTimeout: .seconds(90),
                                                                                                maxRetryBackoff: .milliseconds(500)),
                                        logger: retries.logger)
            let progress = Atomic<Int>(0)
            let writer = Task {
                for number in 0..<perKey {
                    for key in keys {
                        try await producer.enqueue(to: topic, key: Array(key.utf8), value: Array("\(key)|\(number)".utf8))
                    }
                    progress.store(number, ordering: .relaxed)
                    if number % 50 == 0 { try await Task.sleep(for: .milliseconds(10)) }
                }
            }
            for threshold in [perKey / 4, perKey / 2] {
                try #require(await eventually(timeout: .seconds(60)) { progress.load(ordering: .relaxed) >= threshold })
                broker = try await broker.restart()
            }
            try await writer.value
            try await producer.flush()
            try await producer.close()

            var firstOccurrences: [String: [Int]] = [:]
            var seen: Set<String> = []
            var duplicates = 0
            for partition in Int32(0)..<2 {
                for record in try await client.readToEnd(of: topic, partition: partition) {
                    let text = String(decoding: record.value, as: UTF8.self)
                    guard seen.insert(text).inserted else {
                        duplicates += 1
                        continue
                    }
                    let parts = text.split(separator: "|")
                    firstOccurrences[String(parts[0]), default: []].append(Int(parts[1])!)
                }
            }
            for key in keys {
                #expect(firstOccurrences[key] == Array(0..<perKey), "key \(key): records missing or out of order after restarts")
            }
            print("restart test (\(transport)): \(retries.count) retry rounds, \(duplicates) duplicates stored")
        } catch {
            await broker.stop()
            throw error
        }
        await broker.stop()
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func impossibleRecordsFailAtOnce(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient(configuration: ClientConfiguration(maxBatchBytes: 1024))
            defer { client.close() }
            let producer = try Producer(client: client)
            let big = Array(repeating: UInt8(1), count: 2000)
            let enqueued = try #require(await spoolError { try await producer.enqueue(to: "strict", value: big) })
            #expect(enqueued.code == .recordTooLarge && enqueued.message.contains("1024"), "\(enqueued)")
            let sent = try #require(await spoolError { try await producer.send(to: "strict", value: big) })
            #expect(sent.code == .recordTooLarge)
            // The largest record that fits is accepted: 57 bytes of batch header, 2 of record
            // length, then attributes, deltas, no key, a 2-byte value length, no headers.
            #expect(await spoolError { try await producer.send(to: "strict", value: Array(repeating: 2, count: 959)) }?.code == .recordTooLarge)
            #expect(try await producer.send(to: "strict", value: Array(repeating: 2, count: 958)).baseOffset == 0)

            for name in ["", "..", "a/b", "../etc", String(repeating: "x", count: 250)] {
                #expect(await spoolError { try await producer.enqueue(to: name, value: [1]) }?.code == .invalidTopicName, "\(name.prefix(20))")
                #expect(await spoolError { try await producer.send(to: name, value: [1]) }?.code == .invalidTopicName)
            }
            #expect(try await client.topics().map(\.name) == ["strict"])
            let partition = try #require(await spoolError { try await producer.send(to: "strict", partition: 3, value: [1]) })
            #expect(partition.code == .unknownPartition && partition.message.contains("strict"), "\(partition)")
            #expect(await spoolError { try await producer.enqueue(to: "strict", partition: -1, value: [1]) }?.code == .unknownPartition)
            try await producer.flush()  // none of the rejected records counts as enqueued

            try await producer.close()
            #expect(await spoolError { try await producer.enqueue(to: "strict", value: [1]) }?.code == .clientClosed)
            #expect(await spoolError { try await producer.send(to: "strict", value: [1]) }?.code == .clientClosed)
            try await producer.close()  // again: nothing to do
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aBatchTheBrokerRefusesFailsAloneAndTheRestFollowInOrder() async throws {
        try await withBroker(.inproc, configure: { $0.broker.maxRecordBytes = 1000 }) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            // Small batches and a long linger: the large record travels alone, among full batches.
            let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .seconds(3600), batchBytes: 1500))
            let small = (0..<200).map { Array("small-\($0)|".utf8) + Array(repeating: 3, count: 80) }
            for value in small.prefix(100) { try await producer.enqueue(to: "refusing", value: value) }
            try await producer.enqueue(to: "refusing", value: Array(repeating: 9, count: 1400))
            for value in small.suffix(100) { try await producer.enqueue(to: "refusing", value: value) }
            let error = try #require(await spoolError { try await producer.flush() })
            #expect(error.code == .recordTooLarge, "\(error)")
            #expect(error.message.contains("refusing/0"), "\(error)")
            #expect(try await client.readToEnd(of: "refusing").map(\.value) == small, "the records around the refused one")
            try await producer.flush()  // the failure was reported once
            // Once more, the refused batch last: the partition goes on, in order, after it.
            try await producer.enqueue(to: "refusing", value: Array(repeating: 9, count: 1400))
            try await producer.enqueue(to: "refusing", value: [1])
            #expect(await spoolError { try await producer.flush() }?.code == .recordTooLarge)
            try await producer.enqueue(to: "refusing", value: [2])
            try await producer.close()
            #expect(try await client.readToEnd(of: "refusing", from: 200).map(\.value) == [[1], [2]])
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func anUnknownTopicFailsWhereTopicsAreNotCreatedAutomatically() async throws {
        try await withBroker(.inproc, configure: { $0.broker.autoCreateTopics = false }) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let producer = try Producer(client: client)
            let error = try #require(await spoolError { try await producer.send(to: "nowhere", value: [1]) })
            #expect(error.code == .unknownTopic && error.message.contains("nowhere"), "\(error)")
            #expect(await spoolError { try await producer.enqueue(to: "nowhere", value: [1]) }?.code == .unknownTopic)
            try await client.createTopic("somewhere")
            #expect(try await producer.send(to: "somewhere", value: [1]).baseOffset == 0)
            try await producer.close()
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func recordsFailAfterTheDeliveryTimeoutWhenTheBrokerIsGone(transport: InProcessBroker.Transport) async throws {
        let broker = try InProcessBroker(transport: transport)
        let client = try await broker.makeClient()  // a 30-second request timeout: the delivery timeout must win
        defer { client.close() }
        let producer = try Producer(client: client, configuration: ProducerConfiguration(deliveryTimeout: .seconds(1)))
        try await producer.send(to: "vanishing", value: [0])
        await broker.stop()

        let clock = ContinuousClock()
        let start = clock.now
        let error = try #require(await spoolError { try await producer.send(to: "vanishing", value: [1]) })
        #expect(error.code == .timedOut, "\(error)")
        #expect(error.message.contains("vanishing/0") && error.message.contains("delivery timeout") && error.message.contains("attempt"), "\(error)")
        #expect(clock.now - start < .seconds(15), "took \(clock.now - start)")

        for number in 0..<10 { try await producer.enqueue(to: "vanishing", value: [UInt8(number)]) }
        let flushed = try #require(await spoolError { try await producer.flush() })
        #expect(flushed.code == .timedOut && flushed.message.hasPrefix("10 "), "\(flushed)")

        let unseen = try #require(await spoolError { try await producer.send(to: "never-seen", value: [1]) })
        #expect(unseen.code == .timedOut && unseen.message.contains("never-seen"), "\(unseen)")
        #expect(clock.now - start < .seconds(30))
        try await producer.close()  // every failure was reported already
    }

    @Test
    func configurationsOutOfRangeAreRejected() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let invalid = [
                ProducerConfiguration(maxInFlightPerPartition: 0), ProducerConfiguration(maxInFlightPerPartition: 9),
                ProducerConfiguration(linger: .milliseconds(-1)), ProducerConfiguration(batchBytes: 10),
                ProducerConfiguration(maxBytesInFlight: 0), ProducerConfiguration(deliveryTimeout: .zero),
                ProducerConfiguration(retryBackoff: .seconds(5), maxRetryBackoff: .seconds(1)),
            ]
            for configuration in invalid {
                let error = await spoolError { _ = try Producer(client: client, configuration: configuration) }
                #expect(error?.code == .invalidArgument, "\(configuration)")
            }
            let capped = try Producer(client: client, configuration: ProducerConfiguration(batchBytes: 10 << 20))
            #expect(capped.configuration.batchBytes == client.configuration.maxBatchBytes)
        }
    }
}

/// The batch headers stored in a partition's log files, read straight from the broker's data directory.
func storedBatchHeaders(_ broker: InProcessBroker, topic: String, partition: Int32 = 0) throws -> [RecordBatch.Header] {
    let directory = broker.dataDirectory.appending("\(topic)/\(partition)")
    var headers: [RecordBatch.Header] = []
    for file in try FileManager.default.contentsOfDirectory(atPath: directory).filter({ $0.hasSuffix(".log") }).sorted() {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(file)")))
        var position = 0
        while bytes.count - position >= RecordBatch.headerSize {
            let header = try bytes.withUnsafeBytes { try RecordBatch.readHeader(UnsafeRawBufferPointer(rebasing: $0[position...])) }
            guard header.totalSize <= bytes.count - position else { break }
            headers.append(header)
            position += header.totalSize
        }
    }
    return headers
}

/// Counts the log messages equal to `message` of the loggers it makes.
final class LogCounter: Sendable {
    let message: String
    private let counter = Mutex(0)

    init(message: String) { self.message = message }

    var count: Int { counter.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "counted") { _ in Handler(owner: self) }
        logger.logLevel = .debug
        return logger
    }

    private struct Handler: LogHandler {
        let owner: LogCounter
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        func log(event: LogEvent) {
            if event.message.description == owner.message { owner.counter.withLock { $0 += 1 } }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
    }
}
