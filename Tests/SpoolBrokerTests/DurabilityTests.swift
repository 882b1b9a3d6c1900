import SpoolBroker
import SpoolStorage
import SpoolWire
import Synchronization
import Testing

@Suite struct DurabilityTests {
    let key = SyncKey(partition: PartitionKey(topic: try! TopicName("orders"), partition: 0), epoch: 0)

    @Test func acknowledgesOnlyAfterASyncCoversTheBatch() throws {
        let h = try Harness(fsync: .always)
        let (first, firstRecords) = h.randomBatch()
        let (second, secondRecords) = h.randomBatch()
        let (firstID, firstReplies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: first)
        let (secondID, secondReplies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: second)
        #expect(firstReplies.isEmpty)
        #expect(secondReplies.isEmpty)

        // Consumers see nothing unsynced.
        #expect(try h.latestOffset("orders") == 0)
        let (response, reply) = try h.fetch("orders", from: 0)
        #expect(response.logEndOffset == 0)
        #expect(try reply.fetchedRecords().isEmpty)
        let metadata = try h.call(MetadataRequest(topics: ["orders"]), MetadataResponse.self)
        #expect(metadata.topics.first?.partitions == [.init(partition: 0, logStartOffset: 0, logEndOffset: 0)])

        let work = h.broker.takeSyncWork(now: h.now)
        let total = Int64(firstRecords.count + secondRecords.count)
        #expect(work.map(\.0) == [key])
        #expect(work.first?.1.endOffset == total)
        #expect(h.broker.takeSyncWork(now: h.now).isEmpty, "the work was taken")

        // A sync covering only the first batch acknowledges only it.
        let end1 = Int64(firstRecords.count)
        let acks1 = try Reply.decode(h.broker.syncCompleted(key, result: .success(end1), now: h.now))
        let ack1 = try #require(acks1.only)
        #expect(ack1.header.correlationID == firstID)
        #expect(try ack1.body(ProduceResponse.self) == ProduceResponse(partition: 0, baseOffset: 0, durability: .onDisk))
        #expect(try h.latestOffset("orders") == end1)
        #expect(try h.fetchAll("orders") == numbered(firstRecords, from: 0))

        // A stale report changes nothing.
        #expect(try Reply.decode(h.broker.syncCompleted(key, result: .success(end1), now: h.now)).isEmpty)

        let acks2 = try Reply.decode(h.broker.syncCompleted(key, result: .success(total), now: h.now))
        let ack2 = try #require(acks2.only)
        #expect(ack2.header.correlationID == secondID)
        #expect(try ack2.body(ProduceResponse.self) == ProduceResponse(partition: 0, baseOffset: end1, durability: .onDisk))
        #expect(try h.fetchAll("orders") == numbered(firstRecords + secondRecords, from: 0))
    }

    @Test(.timeLimit(.minutes(1)))
    func acknowledgesThroughARealGroupCommitFlusher() throws {
        let h = try Harness(fsync: .always)
        var ids: [UInt64] = []
        var sent: [Record] = []
        var bases: [Int64] = []
        for _ in 0..<5 {
            let (batch, records) = h.randomBatch()
            let (id, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
            #expect(replies.isEmpty)
            ids.append(id)
            bases.append(Int64(sent.count))
            sent += records
        }
        let results = Mutex<[(key: SyncKey, result: Result<Int64, StorageError>)]>([])
        let flusher = GroupCommitFlusher<SyncKey> { round in results.withLock { $0 += round } }
        for (key, work) in h.broker.takeSyncWork(now: h.now) { flusher.submit(work, for: key) }
        flusher.shutdown()  // runs the pending round first

        var acks: [Reply] = []
        for (key, result) in results.withLock({ $0 }) {
            #expect(key == self.key)
            #expect((try? result.get()) == Int64(sent.count))
            acks += try Reply.decode(h.broker.syncCompleted(key, result: result, now: h.now))
        }
        #expect(acks.map(\.header.correlationID) == ids, "acknowledged in produce order")
        let responses = try acks.map { try $0.body(ProduceResponse.self) }
        #expect(responses.map(\.baseOffset) == bases)
        #expect(responses.allSatisfy { $0.durability == .onDisk && $0.partition == 0 })
        #expect(try h.fetchAll("orders") == numbered(sent, from: 0))
    }

    @Test(.timeLimit(.minutes(1)))
    func answersAParkedFetchOnlyOnceTheSyncCompletes() throws {
        let h = try Harness(fsync: .always)
        try h.createTopic("orders")
        let (fetchID, parked) = try h.request(FetchRequest(topic: "orders", partition: 0, offset: 0, maxWaitMilliseconds: 1000))
        #expect(parked.isEmpty, "nothing to read: the fetch parks")
        #expect(h.broker.nextDeadline == h.now + 1000)

        let (batch, records) = h.randomBatch()
        let (produceID, produced) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
        #expect(produced.isEmpty, "neither the ack nor the parked fetch is answered by the append")
        #expect(try Reply.decode(h.broker.expireParkedFetches(now: h.now + 999)).isEmpty)

        let work = try #require(h.broker.takeSyncWork(now: h.now).only)
        let replies = try Reply.decode(h.broker.syncCompleted(work.0, result: .success(work.1.endOffset), now: h.now + 5))
        #expect(replies.count == 2)
        let ack = try #require(replies.first { $0.header.correlationID == produceID })
        #expect(try ack.body(ProduceResponse.self).durability == .onDisk)
        let fetch = try #require(replies.first { $0.header.correlationID == fetchID })
        #expect(try fetch.body(FetchResponse.self).logEndOffset == Int64(records.count))
        #expect(try fetch.fetchedRecords() == numbered(records, from: 0))
        #expect(h.broker.nextDeadline == nil, "no fetch is parked any more")
    }

    @Test func answersPendingProducesWithStorageErrorWhenTheSyncFails() throws {
        let h = try Harness(fsync: .always)
        var ids: [UInt64] = []
        for _ in 0..<3 {
            let (id, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: h.randomBatch().0)
            #expect(replies.isEmpty)
            ids.append(id)
        }
        _ = h.broker.takeSyncWork(now: h.now)
        let failure = StorageError(.io, "fdatasync of /x/orders/0/00000000000000000000.log failed: Input/output error", errno: 5)
        let replies = try Reply.decode(h.broker.syncCompleted(key, result: .failure(failure), now: h.now))
        #expect(replies.map(\.header.correlationID) == ids)
        for reply in replies {
            #expect(reply.header.opCode == .produce)
            #expect(reply.header.errorCode == .storageError)
            #expect(try reply.error().message.contains("Input/output error"))
        }
        #expect(try h.latestOffset("orders") == 0, "consumers never see what failed to sync")
        #expect(try Reply.decode(h.broker.syncCompleted(key, result: .failure(failure), now: h.now)).isEmpty,
                "each produce is answered once")
    }

    @Test func answersProducesStillWaitingAtCloseWithShuttingDown() throws {
        let h = try Harness(fsync: .always)
        let (id, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: h.randomBatch().0)
        #expect(replies.isEmpty)
        let closing = try Reply.decode(h.broker.close())
        let reply = try #require(closing.only)
        #expect(reply.header.correlationID == id)
        #expect(reply.header.errorCode == .brokerShuttingDown)
    }
}
