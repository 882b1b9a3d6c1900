import SpoolBroker
import SpoolStorage
import SpoolWire
import Testing

@Suite struct ProduceFetchTests {
    @Test(arguments: [FsyncPolicy.never, .interval(milliseconds: 50)])
    func acknowledgesAtOnceWithDenseOffsetsAndFetchesWhatWasSent(policy: FsyncPolicy) throws {
        let h = try Harness("acknowledgesAtOnce(\(policy))", fsync: policy)
        let expectedDurability: Durability = policy == .never ? .pageCache : .syncScheduled
        var sent: [Record] = []
        var batches: [[UInt8]] = []
        for _ in 0..<30 {
            let (batch, records) = h.randomBatch()
            let (id, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
            let reply = try #require(replies.only, "the acknowledgement comes with the produce")
            #expect(reply.header.correlationID == id)
            #expect(reply.header.opCode == .produce)
            #expect(reply.frames.count == 1)
            let ack = try reply.body(ProduceResponse.self)
            #expect(ack == ProduceResponse(partition: 0, baseOffset: Int64(sent.count), durability: expectedDurability))
            sent += numbered(records, from: Int64(sent.count))
            batches.append(batch)
        }

        // One fetch from 0 returns every batch, as stored: the base offset stamped, the rest unchanged.
        let (response, reply) = try h.fetch("orders", from: 0)
        #expect(response == FetchResponse(partition: 0, logStartOffset: 0, logEndOffset: Int64(sent.count)))
        #expect(reply.frameWasSlice == [false, true], "records go out as a log slice")
        let fetched = try reply.fetchedBatches()
        #expect(fetched.count == batches.count)
        var base: Int64 = 0
        for (stored, original) in zip(fetched, batches) {
            #expect(stored.bytes[8...] == original[8...])
            #expect(stored.bytes[..<8] == withUnsafeBytes(of: base.littleEndian) { Array($0) }[...])
            base += Int64(stored.records.count)
        }
        #expect(fetched.flatMap(\.records) == sent)

        // Small maxBytes: whole batches, in several steps, still everything.
        #expect(try h.fetchAll("orders", maxBytes: 1) == sent)
        #expect(try h.fetchAll("orders", maxBytes: 700) == sent)

        // From the middle: the reply may start with the batch holding the offset.
        for offset in [1, Int64(sent.count) / 2, Int64(sent.count) - 1] {
            let (_, reply) = try h.fetch("orders", from: offset)
            let records = try reply.fetchedRecords()
            let first = try #require(records.first)
            #expect(first.offset <= offset)
            #expect(records.filter { $0.offset >= offset } == Array(sent[Int(offset)...]))
        }

        // At the end: an empty reply with the end offsets.
        let (endResponse, endReply) = try h.fetch("orders", from: Int64(sent.count))
        #expect(endResponse.logEndOffset == Int64(sent.count))
        #expect(endReply.frames == [endResponse.encoded(), []])
    }

    @Test func keepsPartitionsApart() throws {
        let h = try Harness()
        #expect(try h.call(CreateTopicRequest(name: "events", partitions: 3), CreateTopicResponse.self)
                == CreateTopicResponse(name: "events", partitions: 3))
        var sent: [Int32: [Record]] = [0: [], 1: [], 2: []]
        for _ in 0..<30 {
            let partition = Int32(h.rng.int(0...2))
            let (batch, records) = h.randomBatch()
            let ack = try h.produce("events", partition, batch)
            #expect(ack.partition == partition)
            #expect(ack.baseOffset == Int64(sent[partition]!.count))
            sent[partition]! += numbered(records, from: ack.baseOffset)
        }
        for partition in Int32(0)...2 {
            #expect(try h.fetchAll("events", partition) == sent[partition]!)
            #expect(try h.latestOffset("events", partition) == Int64(sent[partition]!.count))
        }
    }

    @Test func syncsOnlyWhenTheIntervalHasPassed() throws {
        let h = try Harness(fsync: .interval(milliseconds: 50))
        #expect(h.broker.takeSyncWork(now: h.now).isEmpty, "nothing written, nothing to sync")
        #expect(h.broker.nextDeadline == nil)

        let (batch, records) = h.randomBatch()
        #expect(try h.produce("orders", batch).durability == .syncScheduled)
        // The first sync is due at once (no sync has happened yet).
        let first = h.broker.takeSyncWork(now: h.now)
        let key = SyncKey(partition: PartitionKey(topic: try TopicName("orders"), partition: 0), epoch: 0)
        #expect(first.map(\.0) == [key])
        #expect(first.first?.1.endOffset == Int64(records.count))
        #expect(try Reply.decode(h.broker.syncCompleted(key, result: .success(Int64(records.count)), now: h.now)).isEmpty)

        h.now += 10
        let (second, more) = h.randomBatch()
        try h.produce("orders", second)
        #expect(h.broker.nextDeadline == h.now - 10 + 50, "due one interval after the last sync")
        #expect(h.broker.takeSyncWork(now: h.now).isEmpty)
        #expect(h.broker.takeSyncWork(now: h.now + 39).isEmpty)
        let due = h.broker.takeSyncWork(now: h.now + 40)
        #expect(due.map(\.0) == [key])
        #expect(due.first?.1.endOffset == Int64(records.count + more.count))
        #expect(h.broker.nextDeadline == nil, "nothing dirty any more")
        #expect(h.broker.takeSyncWork(now: h.now + 1000).isEmpty)
    }

    @Test func neverSchedulesSyncsUnderFsyncNever() throws {
        let h = try Harness(fsync: .never)
        for _ in 0..<3 { try h.produce("orders", h.randomBatch().0) }
        #expect(h.broker.takeSyncWork(now: h.now + 1_000_000).isEmpty)
        #expect(h.broker.nextDeadline == nil)
        // Shutdown still makes everything durable.
        let (actions, work) = h.broker.beginShutdown()
        #expect(actions.isEmpty)
        #expect(work.count == 1)
        #expect(work.first?.1.endOffset == (try h.latestOffset("orders")))
    }

    @Test func autoCreatesTopicsWithTheDefaultPartitionCount() throws {
        let h = try Harness { $0.defaultPartitions = 4 }
        // Reading never creates a topic: a typo leaves nothing behind.
        try h.expectError(FetchRequest(topic: "fresh", partition: 3, offset: 0), code: .unknownTopic)
        try h.expectError(ListOffsetsRequest(topic: "fresh", partition: 0, spec: .earliest), code: .unknownTopic)
        #expect(try h.call(MetadataRequest(topics: ["fresh"]), MetadataResponse.self).topics.first?.errorCode == .unknownTopic)
        // A producer's metadata request may create it, as its first record would.
        let metadata = try h.call(MetadataRequest(topics: ["fresh"], allowAutoCreation: true), MetadataResponse.self)
        #expect(metadata.topics.first?.partitions.count == 4)
        let (response, _) = try h.fetch("fresh", 3, from: 0)
        #expect(response == FetchResponse(partition: 3, logStartOffset: 0, logEndOffset: 0))
        try h.expectError(ProduceRequest(topic: "fresh", partition: 4), batch: h.randomBatch().0, code: .unknownPartition)
    }
}
