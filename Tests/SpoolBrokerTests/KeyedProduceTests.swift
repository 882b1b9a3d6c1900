@testable import SpoolBroker
import SpoolStorage
import SpoolTesting
import SpoolWire
import Testing

/// Conditional appends ("the last record of key K is at offset N") and reads by key, through
/// the broker's frames: what an event store relies on to keep one writer per version.
@Suite struct KeyedProduceTests {
    static let order = Array("order-7".utf8)
    static let other = Array("order-8".utf8)

    /// A batch of `values.count` records of `key`, optionally stamped for idempotence.
    static func batch(_ key: [UInt8], _ values: [String], producer: Int64? = nil, sequence: Int32 = 0) -> [UInt8] {
        var builder = RecordBatchBuilder()
        if let producer {
            builder.producerID = producer
            builder.producerEpoch = 0
            builder.baseSequence = sequence
        }
        for value in values { builder.append(timestamp: 1_700_000_000_000, key: key, value: Array(value.utf8)) }
        return builder.finish()
    }

    static func conditional(_ key: [UInt8], lastOffset: Int64) -> ProduceRequest {
        ProduceRequest(topic: "orders", partition: 0, condition: KeyCondition(key: key, lastOffset: lastOffset))
    }

    @Test(arguments: [FsyncPolicy.never, .always])
    func aConditionalAppendSucceedsOnlyAtTheKeysLastOffset(policy: FsyncPolicy) throws {
        let h = try Harness("aConditionalAppendSucceedsOnlyAtTheKeysLastOffset(\(policy))", fsync: policy)
        try h.createTopic("orders")
        // "No record yet" holds for a new key, once.
        let placed = try h.produceConditionally(Self.conditional(Self.order, lastOffset: -1), Self.batch(Self.order, ["placed"]))
        #expect(placed.baseOffset == 0)
        let again = try h.expectError(Self.conditional(Self.order, lastOffset: -1), batch: Self.batch(Self.order, ["placed again"]), code: .keyConflict)
        #expect(again.details["lastOffset"] == 0)
        #expect(again.message.contains("order-7") && again.message.contains("nothing was stored"), "\(again.message)")
        // Other keys in between do not move this key's version.
        try h.produce("orders", Self.batch(Self.other, ["elsewhere", "elsewhere"]))
        let paid = try h.produceConditionally(Self.conditional(Self.order, lastOffset: 0), Self.batch(Self.order, ["reserved", "paid"]))
        #expect(paid.baseOffset == 3)
        // A writer that read version 0 loses, and learns the current one: the batch's last record.
        let stale = try h.expectError(Self.conditional(Self.order, lastOffset: 0), batch: Self.batch(Self.order, ["cancelled"]), code: .keyConflict)
        #expect(stale.details["lastOffset"] == 4)
        #expect(try h.produceConditionally(Self.conditional(Self.order, lastOffset: 4), Self.batch(Self.order, ["completed"])).baseOffset == 5)
        #expect(try h.fetchAll("orders").map { String(decoding: $0.value, as: UTF8.self) }
                == ["placed", "elsewhere", "elsewhere", "reserved", "paid", "completed"], "refused batches stored nothing")
    }

    @Test func aRetriedIdempotentConditionalBatchGetsItsOriginalOffsetNotAConflict() throws {
        let h = try Harness()
        try h.createTopic("orders")
        let producer = try h.call(InitProducerIDRequest(), InitProducerIDResponse.self).producerID
        let batch = Self.batch(Self.order, ["placed"], producer: producer)
        let first = try h.produceConditionally(Self.conditional(Self.order, lastOffset: -1), batch)
        // The reply was lost; the producer sends the same batch with the same condition.
        let retry = try h.produceConditionally(Self.conditional(Self.order, lastOffset: -1), batch)
        #expect(retry.baseOffset == first.baseOffset)
        #expect(try h.fetchAll("orders").count == 1)
        // Its next batch, written against a stale version, conflicts.
        let conflict = try h.expectError(Self.conditional(Self.order, lastOffset: -1), batch: Self.batch(Self.order, ["again"], producer: producer, sequence: 1),
                                         code: .keyConflict)
        #expect(conflict.details["lastOffset"] == 0)
    }

    @Test func aKeysLastOffsetOutlivesRetentionAndRestarts() throws {
        let h = try Harness { $0.log.segmentBytes = 300 }
        try h.createTopic("orders")
        try h.produce("orders", Self.batch(Self.order, ["placed"]))
        for number in 0..<20 { try h.produce("orders", Self.batch(Self.other, ["filler-\(number)"])) }
        try h.reopen { $0.log.retentionBytes = 400 }
        h.broker.enforceRetention(now: h.now, wallClockMilliseconds: 1_800_000_000_000)
        let start = try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: .earliest), ListOffsetsResponse.self).offset
        #expect(start > 0, "retention deleted order-7's record")
        // The key is not new: "no record yet" is refused, its last offset still counts.
        let conflict = try h.expectError(Self.conditional(Self.order, lastOffset: -1), batch: Self.batch(Self.order, ["placed again"]), code: .keyConflict)
        #expect(conflict.details["lastOffset"] == 0)
        try h.reopenAfterCrash()
        #expect(try h.produceConditionally(Self.conditional(Self.order, lastOffset: 0), Self.batch(Self.order, ["paid"])).baseOffset == 21)
    }

    @Test func aFetchByKeyReturnsTheKeysBatchesInPagesUpToTheVisibleEnd() throws {
        let h = try Harness(fsync: .always)
        try h.createTopic("orders")
        var mine: [String] = []
        for number in 0..<30 {
            let key = number % 3 == 0 ? Self.order : Self.other
            let values = ["event-\(number)-a", "event-\(number)-b"]
            try h.produce("orders", Self.batch(key, values))
            if key == Self.order { mine += values }
        }
        var read: [String] = []
        var offset: Int64 = 0
        var last: Int64 = -2
        while true {
            let (response, records) = try h.fetchKey(Self.order, from: offset, maxBytes: 200)
            read += records.filter { $0.key == Self.order && $0.offset >= offset }.map { String(decoding: $0.value, as: UTF8.self) }
            last = response.lastOffset
            guard response.nextOffset <= response.lastOffset else { break }
            #expect(!records.isEmpty)
            offset = response.nextOffset
        }
        #expect(read == mine)
        #expect(last == 55, "the key's last record: batch 27, second record")
        // From the middle of a batch: the batch comes whole; the key's records below are skipped by the reader.
        let (_, fromMiddle) = try h.fetchKey(Self.order, from: 55, maxBytes: 1 << 20)
        #expect(fromMiddle.filter { $0.offset >= 55 }.map(\.offset) == [55])
        // A key with no record, an offset past the visible end, an unknown topic.
        let (none, nothing) = try h.fetchKey(Array("nobody".utf8), from: 0, maxBytes: 1 << 20)
        #expect(nothing.isEmpty && none.lastOffset == -1)
        try h.expectError(FetchKeyRequest(topic: "orders", partition: 0, key: Self.order, offset: 61), code: .offsetOutOfRange)
        try h.expectError(FetchKeyRequest(topic: "missing", partition: 0, key: Self.order, offset: 0), code: .unknownTopic)
        // Appended but not yet synced: not visible to a fetch by key either.
        let (_, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: Self.batch(Self.order, ["unsynced"]))
        #expect(replies.isEmpty, "not acknowledged before its sync")
        let (pending, _) = try h.fetchKey(Self.order, from: 56, maxBytes: 1 << 20)
        #expect(pending.lastOffset == 55 && pending.logEndOffset == 60)
    }
}

extension Harness {
    /// Sends a conditional produce that must succeed; runs the sync under `fsync: always`.
    func produceConditionally(_ request: ProduceRequest, _ batch: [UInt8]) throws -> ProduceResponse {
        let (id, replies) = try self.request(request, batch: batch)
        var all = replies
        for (key, work) in broker.takeSyncWork(now: now) {
            all += try Reply.decode(broker.syncCompleted(key, result: .success(work.endOffset), now: now))
        }
        let ack = try #require(all.first { $0.header.correlationID == id })
        #expect(ack.header.errorCode == .none, "\(String(describing: try? ack.error().message))")
        return try ack.body(ProduceResponse.self)
    }

    /// One fetch by key of partition 0 of "orders" and the records of its frame.
    func fetchKey(_ key: [UInt8], from offset: Int64, maxBytes: UInt32) throws -> (FetchKeyResponse, [Record]) {
        let (_, replies) = try request(FetchKeyRequest(topic: "orders", partition: 0, key: key, offset: offset, maxBytes: maxBytes))
        let reply = try #require(replies.only)
        return (try reply.body(FetchKeyResponse.self), try reply.fetchedRecords())
    }
}
