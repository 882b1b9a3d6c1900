import SpoolBroker
import SpoolStorage
import SpoolWire
import Testing

@Suite(.timeLimit(.minutes(1))) struct LongPollTests {
    @Test func answersAParkedFetchWhenDataArrivesAndAnEmptyOneAtItsDeadline() throws {
        let h = try Harness(fsync: .never)
        try h.createTopic("orders", partitions: 2)
        let start = h.now
        let (firstID, parked) = try h.request(FetchRequest(topic: "orders", partition: 0, offset: 0, maxWaitMilliseconds: 1000))
        #expect(parked.isEmpty)
        #expect(h.broker.nextDeadline == start + 1000)

        h.now += 100
        let (batch, records) = h.randomBatch()
        let (produceID, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
        #expect(replies.count == 2, "the ack and the parked fetch")
        let ack = try #require(replies.first { $0.header.correlationID == produceID })
        #expect(try ack.body(ProduceResponse.self).baseOffset == 0)
        let fetch = try #require(replies.first { $0.header.correlationID == firstID })
        #expect(fetch.client == h.client)
        #expect(try fetch.body(FetchResponse.self) == FetchResponse(partition: 0, logStartOffset: 0, logEndOffset: Int64(records.count)))
        #expect(try fetch.fetchedRecords() == numbered(records, from: 0))
        #expect(h.broker.nextDeadline == nil)

        // A second fetch at the new end waits; nothing arrives; it expires at its deadline, not before.
        h.now += 100
        let end = Int64(records.count)
        let (secondID, waiting) = try h.request(FetchRequest(topic: "orders", partition: 0, offset: end, maxWaitMilliseconds: 500))
        #expect(waiting.isEmpty)
        #expect(h.broker.nextDeadline == h.now + 500)
        #expect(try Reply.decode(h.broker.expireParkedFetches(now: h.now)).isEmpty)
        #expect(try Reply.decode(h.broker.expireParkedFetches(now: h.now + 499)).isEmpty)
        let expired = try Reply.decode(h.broker.expireParkedFetches(now: h.now + 500))
        let empty = try #require(expired.only)
        #expect(empty.header.correlationID == secondID)
        #expect(empty.header.errorCode == .none)
        #expect(try empty.body(FetchResponse.self) == FetchResponse(partition: 0, logStartOffset: 0, logEndOffset: end))
        #expect(empty.frames.count == 2)
        #expect(empty.frames.last == [])
        #expect(h.broker.nextDeadline == nil)
        #expect(try Reply.decode(h.broker.expireParkedFetches(now: h.now + 10_000)).isEmpty, "answered once")
    }

    @Test func reportsTheEarliestDeadlineOfSeveralParkedFetches() throws {
        let h = try Harness(fsync: .never)
        try h.createTopic("orders", partitions: 2)
        var deadlines: [UInt64: Int64] = [:]
        for (index, wait) in [UInt32(900), 300, 600].enumerated() {
            let (id, replies) = try h.request(FetchRequest(topic: "orders", partition: Int32(index % 2), offset: 0, maxWaitMilliseconds: wait))
            #expect(replies.isEmpty)
            deadlines[id] = h.now + Int64(wait)
            h.now += 1
        }
        #expect(h.broker.nextDeadline == deadlines.values.min())
        var answered: [UInt64] = []
        for _ in 0..<deadlines.count {
            let deadline = try #require(h.broker.nextDeadline)
            let replies = try Reply.decode(h.broker.expireParkedFetches(now: deadline))
            #expect(replies.count == 1)
            for reply in replies {
                #expect(deadlines[reply.header.correlationID] == deadline)
                answered.append(reply.header.correlationID)
            }
        }
        #expect(h.broker.nextDeadline == nil)
        #expect(Set(answered) == Set(deadlines.keys))
        #expect(answered.map { deadlines[$0]! } == deadlines.values.sorted())
    }

    @Test func capsTheWaitAtTheBrokersMaximum() throws {
        let h = try Harness(fsync: .never) { $0.maxFetchWaitMilliseconds = 300 }
        try h.createTopic("orders")
        let (_, replies) = try h.request(FetchRequest(topic: "orders", partition: 0, offset: 0, maxWaitMilliseconds: .max))
        #expect(replies.isEmpty)
        #expect(h.broker.nextDeadline == h.now + 300)
        #expect(try Reply.decode(h.broker.expireParkedFetches(now: h.now + 300)).count == 1)
    }

    @Test func waitsForMinBytesBeforeAnsweringEarly() throws {
        let h = try Harness(fsync: .never)
        try h.createTopic("orders", partitions: 2)
        let (id, parked) = try h.request(FetchRequest(topic: "orders", partition: 0, offset: 0, maxWaitMilliseconds: 1000, minBytes: 4000))
        #expect(parked.isEmpty)
        let (small, smallRecords) = h.randomBatch(maxRecords: 1, maxValue: 100)
        let first = try h.send([FrameHeader(opCode: .produce, correlationID: 1).encoded(),
                                ProduceRequest(topic: "orders", partition: 0).encoded(), small])
        #expect(first.map(\.header.correlationID) == [1], "only the ack: \(small.count) bytes are below minBytes")

        var builder = RecordBatchBuilder()
        builder.append(timestamp: 1, key: nil, value: [UInt8](repeating: 0x42, count: 4000))
        let big = builder.finish()
        let second = try h.send([FrameHeader(opCode: .produce, correlationID: 2).encoded(),
                                 ProduceRequest(topic: "orders", partition: 0).encoded(), big])
        #expect(Set(second.map(\.header.correlationID)) == [2, id])
        let fetch = try #require(second.first { $0.header.correlationID == id })
        let records = try fetch.fetchedRecords()
        #expect(records.count == smallRecords.count + 1)
        #expect(records.last?.value.count == 4000)
    }

    @Test func doesNotWakeFetchesOfOtherPartitions() throws {
        let h = try Harness(fsync: .never)
        try h.createTopic("orders", partitions: 2)
        let (id, parked) = try h.request(FetchRequest(topic: "orders", partition: 1, offset: 0, maxWaitMilliseconds: 1000))
        #expect(parked.isEmpty)
        let (produceID, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: h.randomBatch().0)
        #expect(replies.map(\.header.correlationID) == [produceID])
        let (_, woken) = try h.request(ProduceRequest(topic: "orders", partition: 1), batch: h.randomBatch().0)
        #expect(woken.contains { $0.header.correlationID == id })
    }

    @Test func answersParkedFetchesAtShutdown() throws {
        let h = try Harness(fsync: .never)
        try h.createTopic("orders", partitions: 2)
        let (id, parked) = try h.request(FetchRequest(topic: "orders", partition: 0, offset: 0, maxWaitMilliseconds: 1000))
        #expect(parked.isEmpty)
        let replies = try h.shutDown()
        let reply = try #require(replies.only)
        #expect(reply.header.correlationID == id)
        #expect(try reply.body(FetchResponse.self).logEndOffset == 0)
        #expect(h.broker.nextDeadline == nil)
    }
}
