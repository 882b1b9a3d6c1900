import SpoolBroker
import SpoolWire
import Testing

/// The broker's limits: each refusal is a clear error, and nothing is half done.
@Suite struct LimitsTests {
    @Test func aBatchWithTooManyRecordsIsRefusedAndNothingIsStored() throws {
        let h = try Harness { $0.maxRecordsPerBatch = 3 }
        var builder = RecordBatchBuilder()
        for index in 0..<4 { builder.append(timestamp: 1, key: nil, value: [UInt8(index)]) }
        let error = try h.expectError(ProduceRequest(topic: "t", partition: 0), batch: builder.finish(), code: .recordTooLarge)
        #expect(error.message.contains("max.records.per.batch"))
        try h.expectError(FetchRequest(topic: "t", partition: 0, offset: 0), code: .unknownTopic)  // a refused batch creates no topic
        try h.produce("t", h.randomBatch(maxRecords: 3).0)
    }

    @Test func topicsBeyondTheLimitAreNotCreated() throws {
        let h = try Harness { $0.maxTopics = 2 }
        _ = try h.call(CreateTopicRequest(name: "a"), CreateTopicResponse.self)
        try h.produce("b", h.randomBatch().0)  // auto-created
        let refused = try h.expectError(CreateTopicRequest(name: "c"), code: .invalidRequest)
        #expect(refused.message.contains("max.topics"))
        try h.expectError(ProduceRequest(topic: "d", partition: 0), batch: h.randomBatch().0, code: .invalidRequest)
        #expect(try h.call(MetadataRequest(), MetadataResponse.self).topics.map(\.name) == ["a", "b"])
    }

    @Test func oneClientCannotParkMoreThanItsShareOfFetches() throws {
        let h = try Harness { $0.maxParkedFetchesPerClient = 2 }
        try h.produce("t", h.randomBatch().0)
        let waiting = FetchRequest(topic: "t", partition: 0, offset: try h.latestOffset("t"), maxWaitMilliseconds: 10_000)
        for _ in 0..<2 { #expect(try h.request(waiting).replies.isEmpty, "parked") }
        let refused = try h.expectError(waiting, code: .invalidRequest)
        #expect(refused.message.contains("max.parked.fetches.per.client"))
        let other = ClientID(Array("client-2".utf8))
        let header = FrameHeader(opCode: .fetch, correlationID: h.correlationID())
        #expect(try h.send([header.encoded(), waiting.encoded()], from: other).isEmpty, "another client still parks")
        // Once the parked ones are answered, the client may park again.
        #expect(try Reply.decode(h.broker.expireParkedFetches(now: h.now + 10_000)).count == 3)
        #expect(try h.request(waiting).replies.isEmpty)
    }

    @Test func aFetchReplyIsCappedWhateverTheClientAsks() throws {
        let h = try Harness { $0.maxFetchBytes = 1024 }
        var stored = 0
        while stored < 8 * 1024 {
            let (batch, _) = h.randomBatch(maxRecords: 4, maxValue: 200)
            try h.produce("t", batch)
            stored += batch.count
        }
        let (_, reply) = try h.fetch("t", from: 0, maxBytes: .max)
        let bytes = try reply.fetchedBatches().reduce(0) { $0 + $1.bytes.count }
        #expect(bytes > 0 && bytes <= 1024 + 1200, "one reply carried \(bytes) bytes")
        #expect(try h.fetchAll("t", maxBytes: .max).count > 0)
    }

    @Test func oneClientCannotHaveMoreThanItsShareOfRequestsWaitingForASync() throws {
        let h = try Harness(fsync: .always) { $0.maxWaitingRequestsPerClient = 2 }
        for _ in 0..<2 { #expect(try h.request(ProduceRequest(topic: "t", partition: 0), batch: h.randomBatch().0).replies.isEmpty) }
        let refused = try h.expectError(ProduceRequest(topic: "t", partition: 0), batch: h.randomBatch().0, code: .invalidRequest)
        #expect(refused.message.contains("max.waiting.requests.per.client"))
        let appended = h.broker.takeSyncWork(now: h.now)
        var acks: [Reply] = []
        for (key, work) in appended { acks += try Reply.decode(h.broker.syncCompleted(key, result: .success(work.endOffset), now: h.now)) }
        #expect(acks.count == 2, "the refused produce was not written")
        #expect(appended.first?.1.endOffset == (try h.latestOffset("t")))
        try h.produce("t", h.randomBatch().0)  // after the replies the client may produce again
    }
}
