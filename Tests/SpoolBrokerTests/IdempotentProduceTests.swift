@testable import SpoolBroker
import SpoolStorage
import SpoolTesting
import SpoolWire
import Testing

/// Idempotent produces: a batch stamped with a producer id and sequence is stored once however
/// often it is sent, across restarts, and a gap in the sequence is refused.
@Suite struct IdempotentProduceTests {
    /// A batch of `count` records from producer `id`, starting at `sequence`.
    private static func batch(producer id: Int64, sequence: Int32, count: Int = 2, epoch: Int16 = 0) -> [UInt8] {
        var builder = RecordBatchBuilder()
        builder.producerID = id
        builder.producerEpoch = epoch
        builder.baseSequence = sequence
        for index in 0..<count { builder.append(timestamp: 1_700_000_000_000, key: nil, value: Array("r\(sequence + Int32(index))".utf8)) }
        return builder.finish()
    }

    @Test func theBrokerHandsOutDistinctProducerIDs() throws {
        let h = try Harness()
        let ids = try (0..<20).map { _ in try h.call(InitProducerIDRequest(), InitProducerIDResponse.self) }
        #expect(Set(ids.map(\.producerID)).count == 20)
        #expect(ids.allSatisfy { $0.producerID >= 0 && $0.producerEpoch == 0 })
    }

    @Test(arguments: [FsyncPolicy.never, .always])
    func aRetriedBatchIsStoredOnceAndAnsweredWithItsOffset(policy: FsyncPolicy) throws {
        let h = try Harness("aRetriedBatchIsStoredOnce(\(policy))", fsync: policy)
        let producer = try h.call(InitProducerIDRequest(), InitProducerIDResponse.self).producerID
        let first = try h.produce("orders", Self.batch(producer: producer, sequence: 0))
        let second = try h.produce("orders", Self.batch(producer: producer, sequence: 2))
        #expect(try h.produce("orders", 0, Self.batch(producer: producer, sequence: 0), synced: true).baseOffset == first.baseOffset)
        #expect(try h.produce("orders", 0, Self.batch(producer: producer, sequence: 2), synced: true).baseOffset == second.baseOffset)
        // Another producer's sequence 0 is its own.
        #expect(try h.produce("orders", Self.batch(producer: producer + 1, sequence: 0)).baseOffset == 4)
        #expect(try h.fetchAll("orders").count == 6)
    }

    @Test func underAlwaysARetryOfAnUnsyncedBatchIsAnsweredOnlyAfterTheSync() throws {
        let h = try Harness(fsync: .always)
        let batch = Self.batch(producer: 9, sequence: 0)
        let (firstID, firstReplies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
        let (retryID, retryReplies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
        #expect(firstReplies.isEmpty && retryReplies.isEmpty, "neither is acknowledged before the sync")
        var acks: [Reply] = []
        for (key, work) in h.broker.takeSyncWork(now: h.now) {
            acks += try Reply.decode(h.broker.syncCompleted(key, result: .success(work.endOffset), now: h.now))
        }
        #expect(acks.map(\.header.correlationID) == [firstID, retryID])
        #expect(try acks.map { try $0.body(ProduceResponse.self) } == [ProduceResponse(partition: 0, baseOffset: 0, durability: .onDisk)] * 2)
        #expect(try h.fetchAll("orders").count == 2)
    }

    @Test func aGapInTheSequenceIsRefusedAndOldRetriesAreDuplicates() throws {
        let h = try Harness()
        try h.produce("orders", Self.batch(producer: 5, sequence: 0, count: 1))
        let gap = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: Self.batch(producer: 5, sequence: 3), code: .outOfOrderSequence)
        #expect(gap.details["expected"] == 1)
        for sequence in Int32(1)...Int32(ProducerStates.retainedBatches + 1) {
            try h.produce("orders", Self.batch(producer: 5, sequence: sequence, count: 1))
        }
        try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: Self.batch(producer: 5, sequence: 0, count: 1), code: .duplicateSequence)
        #expect(try h.fetchAll("orders").count == ProducerStates.retainedBatches + 2, "nothing refused was stored")
    }

    @Test(arguments: [true, false])
    func theProducerStateSurvivesARestart(clean: Bool) throws {
        let h = try Harness("theProducerStateSurvivesARestart(clean: \(clean))", fsync: .always) { $0.log.segmentBytes = 300 }
        var offsets: [Int64] = []
        for sequence in stride(from: Int32(0), to: 12, by: 2) {
            offsets.append(try h.produce("orders", Self.batch(producer: 77, sequence: sequence)).baseOffset)
        }
        if clean {
            try h.reopen()
        } else {
            try h.reopenAfterCrash()
        }
        #expect(try h.produce("orders", 0, Self.batch(producer: 77, sequence: 10), synced: true).baseOffset == offsets.last,
                "the last batch is still known")
        try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: Self.batch(producer: 77, sequence: 20), code: .outOfOrderSequence)
        #expect(try h.produce("orders", Self.batch(producer: 77, sequence: 12)).baseOffset == 12)
        #expect(try h.fetchAll("orders").count == 14)
    }

    @Test func afterAFailedSyncTheLostBatchesCanBeSentAgain() throws {
        let h = try Harness(fsync: .always)
        try h.produce("orders", Self.batch(producer: 3, sequence: 0))
        let (_, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: Self.batch(producer: 3, sequence: 2))
        #expect(replies.isEmpty)
        let (key, _) = try #require(h.broker.takeSyncWork(now: h.now).only)
        let failed = try Reply.decode(h.broker.syncCompleted(key, result: .failure(StorageError(.io, "injected")), now: h.now))
        #expect(failed.map(\.header.errorCode) == [.storageError])
        // The log was cut back to offset 2, and the broker forgot sequence 2: the retry is appended, not a duplicate.
        #expect(try h.produce("orders", Self.batch(producer: 3, sequence: 2)).baseOffset == 2)
        #expect(try h.fetchAll("orders").map(\.value) == ["r0", "r1", "r2", "r3"].map { Array($0.utf8) })
    }
}

private func * <T>(array: [T], count: Int) -> [T] { Array((0..<count).map { _ in array }.joined()) }
