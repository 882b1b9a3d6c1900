import Glibc
@testable @_spi(Testing) import SpoolBroker
import SpoolStorage
@_spi(Testing) import SpoolTesting
import SpoolWire
import Testing

/// A disk that fills up, hits a quota or a size limit, turns read-only or fails a write, under
/// the broker (through the ``FaultInjector`` seam; the end-to-end tests use real filesystems):
/// nothing refused is ever acknowledged or skipped, every refusal says why, each fault is logged
/// once, reads go on, and writes resume by themselves.
@Suite struct DiskFaultTests {
    /// A batch of `count` records from producer `id`, starting at `sequence`.
    private static func batch(producer id: Int64, sequence: Int32, count: Int = 3) -> ([UInt8], [Record]) {
        var builder = RecordBatchBuilder()
        builder.producerID = id
        builder.producerEpoch = 0
        builder.baseSequence = sequence
        var records: [Record] = []
        for index in 0..<count {
            let value = Array("producer \(id) record \(sequence + Int32(index))".utf8)
            builder.append(timestamp: 1_700_000_000_000, key: nil, value: value)
            records.append(Record(offset: 0, timestamp: 1_700_000_000_000, key: nil, value: value, headers: []))
        }
        return (builder.finish(), records)
    }

    /// Sends a produce and returns its correlation id; under `always` the reply comes with the sync.
    private static func produceAwaitingSync(_ h: Harness, _ batch: [UInt8]) throws -> [Reply] {
        let (_, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
        guard replies.isEmpty else { return replies }
        var acks: [Reply] = []
        for (key, work) in h.broker.takeSyncWork(now: h.now) {
            acks += try Reply.decode(h.broker.syncCompleted(key, result: .success(work.endOffset), now: h.now))
        }
        return acks
    }

    /// The bug of the first report: the first batch of a new producer was refused by a full disk,
    /// the next one (smaller) fitted and was stored, and the first one's retry was then taken for
    /// a duplicate: acknowledged, never stored. Now a producer the partition does not know must
    /// start at sequence 0, so the later batch is refused as out of order (expected 0), the
    /// retries come in order, and every record is stored once, at the offset its ack names.
    @Test(arguments: [FsyncPolicy.never, .interval(milliseconds: 100), .always])
    func aBatchRefusedByAFullDiskIsNeverSkippedByTheNextOne(policy: FsyncPolicy) throws {
        let h = try Harness("aBatchRefusedByAFullDiskIsNeverSkipped(\(policy))", fsync: policy)
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 1), CreateTopicResponse.self)
        let (first, firstRecords) = Self.batch(producer: 7, sequence: 0, count: 5)
        let (second, secondRecords) = Self.batch(producer: 7, sequence: 5, count: 2)

        h.faults.failAllWrites(ENOSPC)
        let refused = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: first, code: .storageError)
        #expect(refused.message.contains("the disk is full"), "\(refused.message)")
        #expect(refused.message.contains("nothing was stored"), "\(refused.message)")
        h.faults.failAllWrites(nil)

        // The second batch arrives before the first one's retry: refused, not stored.
        let gap = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: second, code: .outOfOrderSequence)
        #expect(gap.details["expected"] == 0)
        #expect(try h.fetchAll("orders").isEmpty)

        let firstAck = try #require(try Self.produceAwaitingSync(h, first).only).body(ProduceResponse.self)
        let secondAck = try #require(try Self.produceAwaitingSync(h, second).only).body(ProduceResponse.self)
        #expect(firstAck.baseOffset == 0)
        #expect(secondAck.baseOffset == 5)
        // A late retry of the first is a duplicate, answered with where it is.
        let again = try #require(try Self.produceAwaitingSync(h, first).only).body(ProduceResponse.self)
        #expect(again.baseOffset == 0)
        let expected = numbered(firstRecords, from: 0) + numbered(secondRecords, from: 5)
        #expect(try h.fetchAll("orders") == expected)
        try h.reopen()
        #expect(try h.fetchAll("orders") == expected)
    }

    /// A producer the broker forgot (its batches are older than the segments read at open)
    /// continues with a high sequence: refused once as out of order (expected 0), which the SDK
    /// answers by moving its sequences down; sequence 0 is then stored.
    @Test func aForgottenProducerIsAskedToStartOver() throws {
        let h = try Harness()
        let (late, _) = Self.batch(producer: 11, sequence: 40)
        let error = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: late, code: .outOfOrderSequence)
        #expect(error.details["expected"] == 0)
        #expect(error.message.contains("no batch of its epoch"), "\(error.message)")
        let (restarted, _) = Self.batch(producer: 11, sequence: 0)
        #expect(try h.produce("orders", restarted).baseOffset == 0)
    }

    /// Each kind of disk fault, while appending: the produce gets a storage error that names the
    /// cause, nothing is stored or acknowledged, the fault is logged once (with topic, partition
    /// and path) however many produces it refuses, `describe` shows it, reads keep working, and
    /// the first append after the fault is gone works and logs that writes resumed.
    @Test(arguments: [
        (ENOSPC, "the disk is full"), (EDQUOT, "the disk quota is exhausted"), (EFBIG, "the file size limit is reached"),
        (EROFS, "the filesystem is read-only"), (EIO, "the disk failed a write"),
    ])
    func everyDiskFaultRefusesWritesWithItsCauseAndWritesResume(errno: Int32, cause: String) throws {
        let h = try Harness("everyDiskFault(\(errno))", fsync: .always)
        var stored: [Record] = []
        for _ in 0..<3 {
            let (batch, records) = h.randomBatch()
            stored += numbered(records, from: try h.produce("orders", batch).baseOffset)
        }

        h.faults.failAllWrites(errno)
        for _ in 0..<4 {
            let error = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: h.randomBatch().0, code: .storageError)
            #expect(error.message.contains(cause), "\(error.message)")
            #expect(error.message.contains("orders/0"), "\(error.message)")
        }
        #expect(h.broker.takeSyncWork(now: h.now).isEmpty, "nothing was appended, so nothing waits for a sync")
        let faults = h.log.entries(at: .error)
        #expect(faults.count == 1, "one fault, one line: \(faults.map(\.message))")
        #expect(faults.first?.message.hasPrefix(cause) == true)
        #expect(faults.first?.metadata["topic"] == "orders" && faults.first?.metadata["partition"] == "0")
        #expect(faults.first.map { "\($0.metadata["path"] ?? "")".hasSuffix("data/orders/0") } == true)
        let described = try h.call(DescribeTopicRequest(name: "orders"), DescribeTopicResponse.self)
        #expect(described.partitions.first?.writeError.contains(cause) == true)
        #expect(try h.fetchAll("orders") == stored, "reads go on")

        h.faults.failAllWrites(nil)
        let (batch, records) = h.randomBatch()
        #expect(try h.produce("orders", batch).baseOffset == Int64(stored.count))
        stored += numbered(records, from: Int64(stored.count))
        #expect(h.log.messages(at: .notice).contains("writes resumed"))
        #expect(try h.call(DescribeTopicRequest(name: "orders"), DescribeTopicResponse.self).partitions.first?.writeError == "")
        try h.reopenAfterCrash()
        #expect(try h.fetchAll("orders") == stored)
    }

    /// A write that fails halfway (a short write, then ENOSPC) while the log rolls to a new
    /// segment: the partial bytes are cut, the new segment stays empty, the next append lands
    /// there, and a restart after a crash finds exactly the acknowledged records.
    @Test(arguments: [0, 1, 100])
    func aWriteFailingWhileRollingLeavesNothingBehind(partialBytes: Int) throws {
        let h = try Harness("aWriteFailingWhileRolling(\(partialBytes))", fsync: .always) { $0.log.segmentBytes = 1024 }
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 1), CreateTopicResponse.self)
        var stored: [Record] = []
        while try h.segmentBaseOffsets("orders").count < 2 || stored.isEmpty {
            let (batch, records) = h.randomBatch(maxValue: 300)
            h.faults.failWrite(number: 1, partialBytes: partialBytes)
            let error = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: batch, code: .storageError)
            #expect(error.message.contains("the disk is full"))
            #expect(try h.latestOffset("orders") == Int64(stored.count))
            stored += numbered(records, from: try h.produce("orders", batch).baseOffset)
        }
        #expect(try h.fetchAll("orders") == stored)
        try h.reopenAfterCrash()
        #expect(try h.fetchAll("orders") == stored)
    }

    /// Under `fsync: interval` a failed sync is never retried as if the kernel still held the
    /// pages: the log goes back to the last good sync (the records after it were acknowledged as
    /// "sync scheduled" and are lost, which is logged with their offsets), appends continue from
    /// there, and a restart finds what was synced plus what came after.
    @Test func aFailedSyncUnderIntervalCutsBackToTheLastGoodSyncAndReportsTheLoss() throws {
        let h = try Harness(fsync: .interval(milliseconds: 100))
        var synced: [Record] = []
        for _ in 0..<h.rng.int(1...3) {
            let (batch, records) = h.randomBatch()
            synced += numbered(records, from: try h.produce("orders", batch).baseOffset)
        }
        let (goodKey, goodWork) = try #require(h.broker.takeSyncWork(now: h.now).only)
        #expect(try Reply.decode(h.broker.syncCompleted(goodKey, result: .success(goodWork.endOffset), now: h.now)).isEmpty)
        let goodEnd = Int64(synced.count)

        var lostCount = 0
        for _ in 0..<h.rng.int(1...3) {
            let (batch, records) = h.randomBatch()
            #expect(try h.produce("orders", batch).durability == .syncScheduled)
            lostCount += records.count
        }
        h.now += 100
        let (failedKey, _) = try #require(h.broker.takeSyncWork(now: h.now).only)
        #expect(try Reply.decode(h.broker.syncCompleted(failedKey, result: .failure(StorageFailureTests.failure), now: h.now)).isEmpty,
                "the produces were answered already")
        #expect(try h.fetchAll("orders") == synced, "only what a sync vouched for stays")
        #expect(try h.latestOffset("orders") == goodEnd)
        let loss = try #require(h.log.entries(at: .error).first { $0.message.hasPrefix("acknowledged records lost") })
        #expect(loss.metadata["offsets"] == "\(goodEnd)..<\(goodEnd + Int64(lostCount))")
        #expect(loss.metadata["topic"] == "orders")
        // A late success of the failed round does not bring them back.
        #expect(try Reply.decode(h.broker.syncCompleted(failedKey, result: .success(goodEnd + Int64(lostCount)), now: h.now)).isEmpty)
        #expect(try h.latestOffset("orders") == goodEnd)

        let (batch, records) = h.randomBatch()
        #expect(try h.produce("orders", batch).baseOffset == goodEnd)
        let expected = synced + numbered(records, from: goodEnd)
        h.now += 100
        let (nextKey, nextWork) = try #require(h.broker.takeSyncWork(now: h.now).only)
        #expect(nextKey.epoch > failedKey.epoch)
        #expect(nextWork.endOffset == Int64(expected.count))
        #expect(try Reply.decode(h.broker.syncCompleted(nextKey, result: .success(nextWork.endOffset), now: h.now)).isEmpty)
        #expect(h.log.messages(at: .notice).contains("writes resumed"))
        try h.reopen()
        #expect(try h.fetchAll("orders") == expected)
    }

    // MARK: Committed offsets

    private static let partition = TopicPartition(topic: "orders", partition: 0)

    private static func commit(_ offset: Int64) -> CommitOffsetsRequest {
        CommitOffsetsRequest(group: "audit", memberID: "", generation: -1, offsets: [CommittedOffset(partition: partition, offset: offset)])
    }

    private static func committed(_ h: Harness) throws -> Int64? {
        try h.call(FetchOffsetsRequest(group: "audit", partitions: [partition]), FetchOffsetsResponse.self).offsets.first
            .flatMap { $0.offset >= 0 ? $0.offset : nil }
    }

    /// Commits all end in one reply: a commit the full disk refused gets an error and is not
    /// reported as committed; a compaction that fails after a commit was written does not fail
    /// that commit (it is acknowledged once, by its sync); and after a failed sync whose rewrite
    /// fails too, commits are refused until the disk has room, then resume without a restart.
    @Test func commitsOnAFullDiskAreRefusedOnceAndResume() throws {
        let h = try Harness()
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 1), CreateTopicResponse.self)
        func commitAndSync(_ offset: Int64) throws -> [Reply] {
            let (_, replies) = try h.request(Self.commit(offset))
            guard replies.isEmpty else { return replies }
            var acks: [Reply] = []
            for (key, work) in h.broker.takeSyncWork(now: h.now) {
                acks += try Reply.decode(h.broker.syncCompleted(key, result: .success(work.endOffset), now: h.now))
            }
            return acks
        }
        #expect(try commitAndSync(3).only?.header.errorCode == ErrorCode.none)

        // A commit refused by the full disk.
        h.faults.failAllWrites(ENOSPC)
        let refused = try h.expectError(Self.commit(4), code: .storageError)
        #expect(refused.message.contains("the disk is full"), "\(refused.message)")
        #expect(try Self.committed(h) == 3, "a refused commit is not reported as committed")

        // A commit written while the compaction after it fails: one reply, a success.
        h.faults.failAllWrites(nil)
        h.broker.offsetStore.compactionBytes = 1
        let (_, immediate) = try h.request(Self.commit(5))
        #expect(immediate.isEmpty, "the commit waits for its sync; it is not failed by the compaction")
        h.faults.failAllWrites(ENOSPC)
        var replies: [Reply] = []
        for (key, work) in h.broker.takeSyncWork(now: h.now) {
            replies += try Reply.decode(h.broker.syncCompleted(key, result: .success(work.endOffset), now: h.now))
        }
        #expect(replies.map(\.header.errorCode) == [ErrorCode.none])
        h.broker.offsetStore.compactionBytes = OffsetStore.defaultCompactionBytes

        // A failed sync whose rewrite fails too: the waiting commit gets an error, later ones are refused.
        h.faults.failAllWrites(nil)
        let (_, waiting) = try h.request(Self.commit(6))
        #expect(waiting.isEmpty)
        let (key, _) = try #require(h.broker.takeSyncWork(now: h.now).only)
        h.faults.failAllWrites(ENOSPC)
        let failed = try Reply.decode(h.broker.syncCompleted(key, result: .failure(StorageFailureTests.failure), now: h.now))
        #expect(failed.map(\.header.errorCode) == [.storageError])
        let offline = try h.expectError(Self.commit(7), code: .storageError)
        #expect(offline.message.contains("committed offsets are offline"), "\(offline.message)")

        // Space is back: the next commit rewrites the store and goes through.
        h.faults.failAllWrites(nil)
        #expect(try commitAndSync(8).only?.header.errorCode == ErrorCode.none)
        #expect(try Self.committed(h) == 8)
        #expect(h.log.messages(at: .notice).contains("writes resumed"))
        try h.reopenAfterCrash()
        #expect(try Self.committed(h) == 8)
    }

    // MARK: Shutdown

    /// A full disk at the clean stop (the key index's last file, the clean-shutdown marker): the
    /// stop still ends, says it was not clean, and the next start verifies every segment and
    /// finds every record.
    @Test func aFullDiskAtTheCleanShutdownMarkerOnlyCostsAFullCheck() throws {
        let h = try Harness(fsync: .always)
        var stored: [Record] = []
        for _ in 0..<3 {
            let (batch, records) = h.randomBatch()
            stored += numbered(records, from: try h.produce("orders", batch).baseOffset)
        }
        h.faults.failAllWrites(ENOSPC)
        try h.shutDown()
        #expect(h.log.messages(at: .warning).contains { $0.contains("clean-shutdown marker") || $0.contains("could not close a partition cleanly") })
        h.faults.failAllWrites(nil)
        try h.reopenAfterCrash()
        #expect(!h.broker.dataDirectory.openedAfterCleanShutdown)
        #expect(try h.fetchAll("orders") == stored)
    }
}
