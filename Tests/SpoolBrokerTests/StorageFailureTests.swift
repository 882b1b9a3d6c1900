import Foundation
import SpoolBroker
import SpoolStorage
import SpoolTesting
import SpoolWire
import Testing

/// What a failed sync does to produces, to what consumers see and to what a restart finds;
/// and the clean-shutdown marker that tells the next start whether the logs need a full check.
@Suite struct StorageFailureTests {
    static let failure = StorageError(.io, "fdatasync of orders/0/00000000000000000000.log failed: Input/output error", errno: 5)

    /// Under `fsync: always` a failed sync answers every waiting produce (even one appended after
    /// the work was taken) with a storage error, and cuts the log back to the last good sync, so
    /// consumers and a restart see only acknowledged records. Results for the old epoch are
    /// ignored, appends continue at the last good end, and are acknowledged after a sync with the
    /// new key. Runs with one big segment and with 4 KiB segments (the failed records then
    /// started a new segment, which must go too).
    @Test(arguments: [1 << 30, 4096])
    func aFailedSyncUnderAlwaysDropsTheUnsyncedRecordsAndAppendsContinue(segmentBytes: Int) throws {
        let h = try Harness("aFailedSyncUnderAlwaysDropsTheUnsyncedRecords(\(segmentBytes))", fsync: .always) {
            $0.log.segmentBytes = segmentBytes
        }
        // A: acknowledged after a successful sync.
        var acknowledged: [Record] = []
        for _ in 0..<h.rng.int(1...6) {
            let (batch, records) = h.randomBatch(maxValue: 600)
            let ack = try h.produce("orders", batch)
            #expect(ack == ProduceResponse(partition: 0, baseOffset: Int64(acknowledged.count), durability: .onDisk))
            acknowledged += numbered(records, from: ack.baseOffset)
        }
        let goodEnd = Int64(acknowledged.count)
        let segmentsBefore = try h.segmentBaseOffsets("orders")

        // B, C, …: appended, waiting for their sync. With small segments, go on until they started a new segment.
        var waitingIDs: [UInt64] = []
        var waitingRecordCount = 0
        for _ in 0..<200 {
            let (batch, records) = h.randomBatch(maxValue: 600)
            let (id, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
            #expect(replies.isEmpty, "nothing is acknowledged before its sync")
            waitingIDs.append(id)
            waitingRecordCount += records.count
            let rolled = try h.segmentBaseOffsets("orders").count > segmentsBefore.count
            if waitingIDs.count >= 2, segmentBytes > 4096 || rolled { break }
        }
        if segmentBytes == 4096 { try #require(try h.segmentBaseOffsets("orders").count > segmentsBefore.count) }

        let (oldKey, work) = try #require(h.broker.takeSyncWork(now: h.now).only)
        #expect(oldKey.subject == .partition(PartitionKey(topic: try TopicName("orders"), partition: 0)))
        #expect(work.endOffset == goodEnd + Int64(waitingRecordCount))
        // One more produce arrives while the sync runs: it is lost with the others.
        let (lateID, lateReplies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: h.randomBatch().0)
        #expect(lateReplies.isEmpty)
        waitingIDs.append(lateID)

        let failed = try Reply.decode(h.broker.syncCompleted(oldKey, result: .failure(Self.failure), now: h.now))
        #expect(failed.map(\.header.correlationID) == waitingIDs, "every waiting produce is answered, once, in order")
        for reply in failed {
            #expect(reply.header.opCode == .produce)
            #expect(reply.header.errorCode == .storageError)
            #expect(try reply.error().message.contains("Input/output error"))
        }
        #expect(try h.latestOffset("orders") == goodEnd)
        #expect(try h.fetchAll("orders") == acknowledged, "the failed records are gone")
        let metadata = try h.call(MetadataRequest(topics: ["orders"]), MetadataResponse.self)
        #expect(metadata.topics.first?.partitions == [.init(partition: 0, logStartOffset: 0, logEndOffset: goodEnd)])
        #expect(try h.segmentBaseOffsets("orders") == segmentsBefore, "segments holding only failed records are deleted")

        // Late results for the old epoch change nothing.
        #expect(try Reply.decode(h.broker.syncCompleted(oldKey, result: .success(work.endOffset), now: h.now)).isEmpty)
        #expect(try h.latestOffset("orders") == goodEnd, "a stale success does not bring the failed records back")

        // D: appended at the last good end.
        let (batchD, recordsD) = h.randomBatch(maxValue: 600)
        let (idD, repliesD) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batchD)
        #expect(repliesD.isEmpty)
        #expect(try Reply.decode(h.broker.syncCompleted(oldKey, result: .success(work.endOffset + 1000), now: h.now)).isEmpty,
                "a stale success neither acknowledges D")
        #expect(try Reply.decode(h.broker.syncCompleted(oldKey, result: .failure(Self.failure), now: h.now)).isEmpty,
                "nor does a stale failure fail it")
        let (newKey, newWork) = try #require(h.broker.takeSyncWork(now: h.now).only)
        #expect(newKey.subject == oldKey.subject)
        #expect(newKey.epoch > oldKey.epoch)
        #expect(newWork.endOffset == goodEnd + Int64(recordsD.count))
        let acks = try Reply.decode(h.broker.syncCompleted(newKey, result: .success(newWork.endOffset), now: h.now))
        let ack = try #require(acks.only)
        #expect(ack.header.correlationID == idD)
        #expect(try ack.body(ProduceResponse.self) == ProduceResponse(partition: 0, baseOffset: goodEnd, durability: .onDisk))

        let expected = acknowledged + numbered(recordsD, from: goodEnd)
        #expect(try h.fetchAll("orders") == expected)
        try h.reopen()
        #expect(try h.latestOffset("orders") == Int64(expected.count))
        #expect(try h.fetchAll("orders") == expected, "a restart finds exactly the acknowledged records")
        // And appends go on after the restart.
        let (batchE, recordsE) = h.randomBatch()
        #expect(try h.produce("orders", batchE).baseOffset == Int64(expected.count))
        #expect(try h.fetchAll("orders") == expected + numbered(recordsE, from: Int64(expected.count)))
    }

    /// A failed sync under `fsync: always` touches only its own partition: another partition's
    /// waiting produce is acknowledged by its own sync.
    @Test func aFailedSyncUnderAlwaysLeavesOtherPartitionsAlone() throws {
        let h = try Harness(fsync: .always)
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 2), CreateTopicResponse.self)
        let (batch0, _) = h.randomBatch()
        let (batch1, records1) = h.randomBatch()
        let (id0, _) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch0)
        let (id1, _) = try h.request(ProduceRequest(topic: "orders", partition: 1), batch: batch1)
        let work = h.broker.takeSyncWork(now: h.now)
        let orders = try TopicName("orders")
        #expect(Set(work.map(\.0.subject)) == [.partition(PartitionKey(topic: orders, partition: 0)), .partition(PartitionKey(topic: orders, partition: 1))])
        var replies: [Reply] = []
        for (key, item) in work {
            let result: Result<Int64, StorageError> = key.subject == .partition(PartitionKey(topic: orders, partition: 0)) ? .failure(Self.failure) : .success(item.endOffset)
            replies += try Reply.decode(h.broker.syncCompleted(key, result: result, now: h.now))
        }
        let failed = try #require(replies.first { $0.header.correlationID == id0 })
        #expect(failed.header.errorCode == .storageError)
        let ack = try #require(replies.first { $0.header.correlationID == id1 })
        #expect(try ack.body(ProduceResponse.self) == ProduceResponse(partition: 1, baseOffset: 0, durability: .onDisk))
        #expect(replies.count == 2)
        #expect(try h.fetchAll("orders", 0).isEmpty)
        #expect(try h.fetchAll("orders", 1) == numbered(records1, from: 0))
    }

    // MARK: Clean shutdown

    /// A graceful stop (beginShutdown, syncs, close) leaves `@clean-shutdown` in the data
    /// directory; the next open consumes it (a crash from then on must mean a full check); the
    /// next graceful stop writes it again. Nothing is lost across the stops.
    @Test(arguments: [FsyncPolicy.never, .interval(milliseconds: 100), .always])
    func aCleanStopLeavesTheMarkerAndTheNextOpenConsumesIt(policy: FsyncPolicy) throws {
        let h = try Harness("aCleanStopLeavesTheMarker(\(policy))", fsync: policy)
        let marker = h.markerPath
        #expect(!FileManager.default.fileExists(atPath: marker), "a new data directory has no marker")
        var sent: [Record] = []
        func produceSome() throws {
            for _ in 0..<h.rng.int(1...4) {
                let (batch, records) = h.randomBatch()
                sent += numbered(records, from: try h.produce("orders", batch).baseOffset)
            }
        }
        try produceSome()
        #expect(!FileManager.default.fileExists(atPath: marker), "no marker while the broker runs")
        try h.shutDown()
        #expect(FileManager.default.fileExists(atPath: marker), "a graceful stop leaves the marker")

        try h.reopen()
        #expect(!FileManager.default.fileExists(atPath: marker), "the open consumed the marker")
        #expect(try h.fetchAll("orders") == sent)
        try produceSome()
        try h.shutDown()
        #expect(FileManager.default.fileExists(atPath: marker), "the next graceful stop writes it again")
        try h.reopen()
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(try h.fetchAll("orders") == sent)
    }

    /// A broker that goes away without `close()` (as in a crash) leaves no marker, even if the
    /// previous one stopped cleanly; the next broker still finds every synced record, and its
    /// own clean stop writes the marker again.
    @Test func aBrokerGoneWithoutCloseLeavesNoMarker() throws {
        var rng = SeededGenerator.logged()
        let directory = try TemporaryDirectory(prefix: "spool-broker-tests")
        let configuration = BrokerConfiguration(dataDirectory: directory.appending("data"), log: LogConfiguration(fsync: .always))
        let marker = configuration.dataDirectory + "/@clean-shutdown"
        var sent: [Record] = []

        do {  // A clean run.
            let broker = try Broker(configuration: configuration, logger: Harness.logger)
            sent += try produceAndSync(broker, &rng, at: Int64(sent.count))
            try stopGracefully(broker)
        }
        #expect(FileManager.default.fileExists(atPath: marker))

        do {  // A run that ends without close.
            let broker = try Broker(configuration: configuration, logger: Harness.logger)
            #expect(!FileManager.default.fileExists(atPath: marker), "the open consumed the marker")
            sent += try produceAndSync(broker, &rng, at: Int64(sent.count))
            withExtendedLifetime(broker) {}
        }
        #expect(!FileManager.default.fileExists(atPath: marker), "a broker gone without close leaves no marker")

        let broker = try Broker(configuration: configuration, logger: Harness.logger)
        #expect(try fetchAll(broker) == sent, "every synced record survives")
        try stopGracefully(broker)
        #expect(FileManager.default.fileExists(atPath: marker))
    }

    /// A stop with a produce still waiting for its sync is not clean: no marker, so the next
    /// start verifies every segment. Calling `close()` again must not change that (the
    /// directory's lock is released by then, and another broker may own it).
    @Test func aCloseWithUnsyncedRecordsLeavesNoMarkerEvenWhenRepeated() throws {
        var rng = SeededGenerator.logged()
        let directory = try TemporaryDirectory(prefix: "spool-broker-tests")
        let configuration = BrokerConfiguration(dataDirectory: directory.appending("data"), log: LogConfiguration(fsync: .always))
        let marker = configuration.dataDirectory + "/@clean-shutdown"
        let broker = try Broker(configuration: configuration, logger: Harness.logger)
        let id = rng.next()
        let frames = [FrameHeader(opCode: .produce, correlationID: id).encoded(), ProduceRequest(topic: "orders", partition: 0).encoded(),
                      randomBatch(&rng).0]
        #expect(try Reply.decode(broker.handle(client: ClientID([1]), frames: frames, now: 0)).isEmpty)

        let closing = try Reply.decode(broker.close())
        #expect(closing.map(\.header.correlationID) == [id])
        #expect(closing.first?.header.errorCode == .brokerShuttingDown)
        #expect(!FileManager.default.fileExists(atPath: marker), "a stop with an unsynced append is not clean")
        _ = broker.close()
        #expect(!FileManager.default.fileExists(atPath: marker), "a second close() marked an unclean stop as clean")
    }
}

// MARK: Helpers

extension Harness {
    /// `<data>/<topic>/<partition>`.
    func partitionDirectory(_ topic: String, _ partition: Int32 = 0) -> String {
        "\(configuration.dataDirectory)/\(topic)/\(partition)"
    }

    /// The base offsets of the partition's segments, from the `<20 digits>.log` files on disk.
    func segmentBaseOffsets(_ topic: String, _ partition: Int32 = 0) throws -> [Int64] {
        try FileManager.default.contentsOfDirectory(atPath: partitionDirectory(topic, partition))
            .filter { $0.hasSuffix(".log") && $0.utf8.count == 24 }
            .compactMap { Int64($0.dropLast(4)) }
            .sorted()
    }

    /// `<data>/@clean-shutdown`.
    var markerPath: String { "\(configuration.dataDirectory)/@clean-shutdown" }
}

/// A batch of 1...5 small random records and the records.
private func randomBatch(_ rng: inout SeededGenerator) -> ([UInt8], [Record]) {
    var builder = RecordBatchBuilder()
    var records: [Record] = []
    for number in 0..<rng.int(1...5) {
        let record = Record(timestamp: 1_700_000_000_000 + Int64(number), key: rng.bytes(rng.int(0...8)), value: rng.bytes(rng.int(0...100)))
        builder.append(record)
        records.append(record)
    }
    return (builder.finish(), records)
}

/// Produces a few batches to `orders`/0 of a broker under `fsync: always` and syncs them;
/// returns the records, numbered from `base`.
private func produceAndSync(_ broker: Broker, _ rng: inout SeededGenerator, at base: Int64) throws -> [Record] {
    var records: [Record] = []
    var ids: [UInt64] = []
    for _ in 0..<rng.int(1...4) {
        let (batch, batchRecords) = randomBatch(&rng)
        let id = rng.next()
        let frames = [FrameHeader(opCode: .produce, correlationID: id).encoded(), ProduceRequest(topic: "orders", partition: 0).encoded(), batch]
        #expect(try Reply.decode(broker.handle(client: ClientID([1]), frames: frames, now: 0)).isEmpty)
        ids.append(id)
        records += numbered(batchRecords, from: base + Int64(records.count))
    }
    var acks: [Reply] = []
    for (key, work) in broker.takeSyncWork(now: 0) {
        acks += try Reply.decode(broker.syncCompleted(key, result: .success(work.endOffset), now: 0))
    }
    #expect(acks.map(\.header.correlationID) == ids)
    #expect(try acks.allSatisfy { try $0.body(ProduceResponse.self).durability == .onDisk })
    return records
}

/// Every record of `orders`/0, fetched without waiting.
private func fetchAll(_ broker: Broker) throws -> [Record] {
    var records: [Record] = []
    for _ in 0..<1000 {
        let frames = [FrameHeader(opCode: .fetch, correlationID: 7).encoded(),
                      FetchRequest(topic: "orders", partition: 0, offset: Int64(records.count)).encoded()]
        let reply = try #require(try Reply.decode(broker.handle(client: ClientID([1]), frames: frames, now: 0)).only)
        let fetched = try reply.fetchedRecords().filter { $0.offset >= Int64(records.count) }
        if fetched.isEmpty { return records }
        records += fetched
    }
    throw BrokerTestError("fetchAll did not reach the end")
}

/// beginShutdown, every sync reported successful, close: as the server stops.
private func stopGracefully(_ broker: Broker) throws {
    let (actions, work) = broker.beginShutdown()
    _ = try Reply.decode(actions)
    for (key, item) in work { _ = try Reply.decode(broker.syncCompleted(key, result: .success(item.endOffset), now: 0)) }
    _ = try Reply.decode(broker.close())
}
