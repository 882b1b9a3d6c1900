import Foundation
import SpoolBroker
import SpoolStorage
import SpoolWire
import Testing

/// Describing and deleting topics: settings in force, sizes, and what a deletion does to the
/// requests that wait on the topic, to groups, to the disk and to a topic created again.
@Suite(.timeLimit(.minutes(1))) struct TopicAdminTests {
    @Test func describeShowsTheSettingsInForceTheTopicsOwnAndEachPartitionsSize() throws {
        let h = try Harness(fsync: .never)
        let own = ["retention.ms": "60000", "fsync": "interval", "fsync.interval.ms": "20"]
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 2, settings: own), CreateTopicResponse.self)
        let (batch, records) = h.randomBatch()
        try h.produce("orders", 1, batch)
        let described = try h.call(DescribeTopicRequest(name: "orders"), DescribeTopicResponse.self)
        #expect(described.name == "orders")
        #expect(described.topicSettings == own)
        #expect(described.settings == ["fsync": "interval", "fsync.interval.ms": "20", "retention.ms": "60000", "retention.bytes": "-1",
                                       "segment.bytes": String(LogConfiguration().segmentBytes),
                                       "segment.ms": String(LogConfiguration.sevenDaysInMilliseconds),
                                       "index.interval.bytes": String(LogConfiguration().indexIntervalBytes),
                                       "key.index.keys.in.memory": String(LogConfiguration().keyIndexKeysInMemory),
                                       "cleanup.policy": "delete", "delete.retention.ms": "86400000"])
        #expect(described.partitions.map(\.partition) == [0, 1])
        #expect(described.partitions.map(\.logEndOffset) == [0, Int64(records.count)])
        #expect(described.partitions[0].sizeBytes == 0 && described.partitions[1].sizeBytes == Int64(batch.count))
        #expect(described.partitions.allSatisfy { $0.segmentCount == 1 && $0.logStartOffset == 0 })
        // Every key the broker takes from a topic is described, and describing reads them back unchanged.
        #expect(Set(described.settings.keys) == Set(LogSettings.keys))
        #expect(try LogSettings.apply(described.settings, to: LogConfiguration()) == LogSettings.apply(own, to: h.configuration.log))

        try h.expectError(DescribeTopicRequest(name: "missing"), code: .unknownTopic)
        try h.expectError(DescribeTopicRequest(name: "../etc"), code: .invalidTopicName)
    }

    @Test func deleteAnswersParkedFetchesRemovesTheDirectoryAndFreesTheName() throws {
        let h = try Harness(fsync: .never)
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 2), CreateTopicResponse.self)
        let (batch, _) = h.randomBatch()
        try h.produce("orders", 1, batch)
        let end = try h.latestOffset("orders", 1)
        let (fetchID, parked) = try h.request(FetchRequest(topic: "orders", partition: 1, offset: end, maxWaitMilliseconds: 10_000))
        #expect(parked.isEmpty)

        let (deleteID, replies) = try h.request(DeleteTopicRequest(name: "orders"))
        #expect(replies.count == 2, "the parked fetch and the deletion")
        let fetch = try #require(replies.first { $0.header.correlationID == fetchID })
        #expect(fetch.header.errorCode == .unknownTopic)
        #expect(try fetch.error().message == "topic 'orders' was deleted")
        let deleted = try #require(replies.first { $0.header.correlationID == deleteID })
        #expect(try deleted.body(DeleteTopicResponse.self) == DeleteTopicResponse(name: "orders", partitions: 2))
        #expect(h.broker.nextDeadline == nil, "no fetch is left parked")
        #expect(!FileManager.default.fileExists(atPath: h.directory.appending("data/orders")))
        #expect(try h.call(MetadataRequest(topics: ["orders"]), MetadataResponse.self).topics.map(\.errorCode) == [.unknownTopic])
        try h.expectError(DeleteTopicRequest(name: "orders"), code: .unknownTopic)

        // The name is free: a new topic of that name starts empty, and so it stays after a restart.
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 1), CreateTopicResponse.self)
        #expect(try h.latestOffset("orders") == 0)
        try h.reopen()
        #expect(try h.call(MetadataRequest(), MetadataResponse.self).topics == [.init(name: "orders", partitions: [.init(partition: 0, logStartOffset: 0, logEndOffset: 0)])])
    }

    @Test func deleteFailsWaitingProducesAndALateSyncOfTheOldTopicAcknowledgesNothingNew() throws {
        let h = try Harness(fsync: .always)
        let (batch, _) = h.randomBatch()
        let (firstID, waiting) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
        #expect(waiting.isEmpty)
        let oldWork = h.broker.takeSyncWork(now: h.now)
        try #require(oldWork.count == 1)

        let (deleteID, replies) = try h.request(DeleteTopicRequest(name: "orders"))
        let failed = try #require(replies.first { $0.header.correlationID == firstID })
        #expect(failed.header.errorCode == .unknownTopic)
        #expect(replies.contains { $0.header.correlationID == deleteID && $0.header.errorCode == .none })

        // Created again; its first produce waits for its own sync, not the old topic's.
        let (secondID, pending) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
        #expect(pending.isEmpty)
        let late = try Reply.decode(h.broker.syncCompleted(oldWork[0].0, result: .success(oldWork[0].1.endOffset), now: h.now))
        #expect(late.isEmpty, "a sync of the deleted topic acknowledged a produce of the new one")
        var acks: [Reply] = []
        for (key, work) in h.broker.takeSyncWork(now: h.now) {
            acks += try Reply.decode(h.broker.syncCompleted(key, result: .success(work.endOffset), now: h.now))
        }
        #expect(acks.map(\.header.correlationID) == [secondID])
    }

    @Test func deleteIsRefusedWhileAGroupWithLiveMembersConsumesTheTopic() throws {
        let h = try Harness()
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 1), CreateTopicResponse.self)
        let joined = try h.call(JoinGroupRequest(group: "workers", topics: ["orders"]), JoinGroupResponse.self)
        let refused = try h.expectError(DeleteTopicRequest(name: "orders"), code: .groupNotEmpty)
        #expect(refused.message == "group 'workers' has live members consuming topic 'orders'; stop them before deleting it")
        _ = try h.call(LeaveGroupRequest(group: "workers", memberID: joined.assignment.memberID), LeaveGroupResponse.self)
        #expect(try h.call(DeleteTopicRequest(name: "orders"), DeleteTopicResponse.self).partitions == 1)
    }

    @Test func deletingNeedsTheAdminGrantAndDescribingTheConsumeGrant() throws {
        let rules = AccessRules(rules: [.init(pattern: "*", grants: [.consume: ["reader"], .admin: ["admin"]])])
        let h = try Harness { $0.accessRules = rules }
        _ = try Reply.decode(h.broker.handle(client: h.client, identity: "admin", frames: [
            FrameHeader(opCode: .createTopic, correlationID: 1).encoded(), CreateTopicRequest(name: "orders").encoded(),
        ], now: h.now))
        func send(_ body: some WireMessage, as identity: String) throws -> Reply {
            let frames = [FrameHeader(opCode: type(of: body).opCode, correlationID: 2).encoded(), body.encoded()]
            return try #require(try Reply.decode(h.broker.handle(client: h.client, identity: identity, frames: frames, now: h.now)).only)
        }
        #expect(try send(DescribeTopicRequest(name: "orders"), as: "admin").header.errorCode == .notAuthorized)
        #expect(try send(DescribeTopicRequest(name: "orders"), as: "reader").header.errorCode == .none)
        #expect(try send(DeleteTopicRequest(name: "orders"), as: "reader").header.errorCode == .notAuthorized)
        #expect(try send(DeleteTopicRequest(name: "orders"), as: "admin").header.errorCode == .none)
    }
}
