import SpoolBroker
import SpoolStorage
import SpoolWire
import Testing

/// A simulated group member that behaves as the SDK's consumer does: it holds the partitions of
/// its last assignment and reports them in each heartbeat.
private struct SimulatedMember {
    let client: ClientID
    var memberID: String
    var generation: Int32
    var held: Set<TopicPartition>
}

@Suite("Consumer groups")
struct GroupTests {
    private static func partitions(_ topic: String, _ count: Int32) -> Set<TopicPartition> {
        Set((0..<count).map { TopicPartition(topic: topic, partition: $0) })
    }

    private func join(_ harness: Harness, _ name: String, topics: [String] = ["orders"], memberID: String = "",
                      owned: [TopicPartition] = [], sessionTimeout: UInt32 = 3_000) throws -> SimulatedMember {
        let client = ClientID(Array(name.utf8))
        let id = harness.correlationID()
        let request = JoinGroupRequest(group: "workers", memberID: memberID, sessionTimeoutMilliseconds: sessionTimeout, topics: topics, owned: owned)
        let replies = try harness.send([FrameHeader(opCode: .joinGroup, correlationID: id).encoded(), request.encoded()], from: client)
        let assignment = try #require(replies.only).body(JoinGroupResponse.self).assignment
        return SimulatedMember(client: client, memberID: assignment.memberID, generation: assignment.generation, held: Set(assignment.partitions))
    }

    /// One heartbeat of `member`; it then holds exactly what the broker granted.
    private func heartbeat(_ harness: Harness, _ member: inout SimulatedMember) throws {
        let request = HeartbeatRequest(group: "workers", memberID: member.memberID, generation: member.generation, owned: member.held.sorted())
        let id = harness.correlationID()
        let replies = try harness.send([FrameHeader(opCode: .heartbeat, correlationID: id).encoded(), request.encoded()], from: member.client)
        let assignment = try #require(replies.only).body(HeartbeatResponse.self).assignment
        member.generation = assignment.generation
        member.held = Set(assignment.partitions)
    }

    /// Heartbeats round after round until nothing changes; checks after every reply that no
    /// partition is held by two members.
    private func settle(_ harness: Harness, _ members: inout [SimulatedMember]) throws {
        for _ in 0..<10 {
            let before = members.map(\.held)
            for index in members.indices {
                try heartbeat(harness, &members[index])
                let all = members.flatMap(\.held)
                #expect(Set(all).count == all.count, "a partition is held by two members: \(members.map { $0.held.sorted() })")
            }
            if members.map(\.held) == before { return }
        }
        Issue.record("the group did not settle in 10 rounds")
    }

    @Test func threeMembersShareSixPartitionsTwoEachWithoutOverlap() throws {
        let harness = try Harness()
        _ = try harness.call(CreateTopicRequest(name: "orders", partitions: 6), CreateTopicResponse.self)
        var members = [try join(harness, "a")]
        #expect(members[0].held == Self.partitions("orders", 6), "a lone member gets every partition")
        members.append(try join(harness, "b"))
        #expect(members[1].held.isEmpty, "b gets nothing until a releases")
        try settle(harness, &members)
        members.append(try join(harness, "c"))
        try settle(harness, &members)
        #expect(members.map(\.held.count) == [2, 2, 2])
        #expect(Set(members.flatMap(\.held)) == Self.partitions("orders", 6))
        #expect(Set(members.map(\.generation)).count == 1, "everyone ends in the same generation")

        let described = try harness.call(DescribeGroupRequest(group: "workers"), DescribeGroupResponse.self)
        #expect(described.state == .stable)
        #expect(described.members.count == 3)
        #expect(Set(described.members.flatMap(\.partitions)) == Self.partitions("orders", 6))
    }

    @Test func aSilentMemberIsRemovedAfterItsSessionAndItsPartitionsMove() throws {
        let harness = try Harness()
        _ = try harness.call(CreateTopicRequest(name: "orders", partitions: 6), CreateTopicResponse.self)
        var members = [try join(harness, "a"), try join(harness, "b"), try join(harness, "c")]
        try settle(harness, &members)
        let dead = members.removeLast()
        harness.now += 2_000
        for index in members.indices { try heartbeat(harness, &members[index]) }
        harness.broker.expireGroupSessions(now: harness.now)
        #expect(try harness.call(DescribeGroupRequest(group: "workers"), DescribeGroupResponse.self).members.count == 3,
                "within its session the silent member stays")
        harness.now += 1_500
        harness.broker.expireGroupSessions(now: harness.now)
        try settle(harness, &members)
        #expect(members.map(\.held.count) == [3, 3])
        #expect(Set(members.flatMap(\.held)) == Self.partitions("orders", 6))
        // The removed member is told to join again, and its stale commits are refused.
        try harness.expectError(HeartbeatRequest(group: "workers", memberID: dead.memberID, generation: dead.generation, owned: []),
                                code: .unknownMember)
        try harness.expectError(CommitOffsetsRequest(group: "workers", memberID: dead.memberID, generation: dead.generation,
                                                     offsets: [CommittedOffset(partition: dead.held.first!, offset: 5)]),
                                code: .unknownMember)
    }

    @Test func commitsAreFencedByGenerationAndOwnership() throws {
        let harness = try Harness()
        _ = try harness.call(CreateTopicRequest(name: "orders", partitions: 2), CreateTopicResponse.self)
        var a = try join(harness, "a")
        let p0 = TopicPartition(topic: "orders", partition: 0)
        let p1 = TopicPartition(topic: "orders", partition: 1)
        let staleGeneration = a.generation
        var b = try join(harness, "b")
        var members = [a, b]
        try settle(harness, &members)
        (a, b) = (members[0], members[1])
        let aPartition = try #require(a.held.first)
        let bPartition = try #require(b.held.first)
        try harness.expectError(CommitOffsetsRequest(group: "workers", memberID: a.memberID, generation: staleGeneration,
                                                     offsets: [CommittedOffset(partition: aPartition, offset: 1)]), code: .staleGeneration)
        try harness.expectError(CommitOffsetsRequest(group: "workers", memberID: a.memberID, generation: a.generation,
                                                     offsets: [CommittedOffset(partition: bPartition, offset: 1)]), code: .staleGeneration)
        try harness.expectError(CommitOffsetsRequest(group: "workers", memberID: "", generation: -1,
                                                     offsets: [CommittedOffset(partition: p0, offset: 1)]), code: .groupNotEmpty)
        try harness.expectError(CommitOffsetsRequest(group: "workers", memberID: a.memberID, generation: a.generation,
                                                     offsets: [CommittedOffset(partition: aPartition, offset: -1)]), code: .invalidRequest)
        try harness.expectError(CommitOffsetsRequest(group: "bad/name", memberID: a.memberID, generation: a.generation, offsets: []),
                                code: .invalidRequest)
        #expect(try harness.call(FetchOffsetsRequest(group: "workers", partitions: [p0, p1]), FetchOffsetsResponse.self).offsets
                    .map(\.offset) == [-1, -1], "nothing refused was stored")

        // Once both leave, an administrative commit (an offset reset) is accepted.
        _ = try harness.call(LeaveGroupRequest(group: "workers", memberID: a.memberID), LeaveGroupResponse.self)
        _ = try harness.call(LeaveGroupRequest(group: "workers", memberID: b.memberID), LeaveGroupResponse.self)
        try commit(harness, CommitOffsetsRequest(group: "workers", memberID: "", generation: -1, offsets: [CommittedOffset(partition: p1, offset: 7)]))
        #expect(try harness.call(FetchOffsetsRequest(group: "workers", partitions: [p1]), FetchOffsetsResponse.self).offsets.map(\.offset) == [7])
    }

    /// Sends a commit, checks it is not answered before its sync, runs the sync, returns the ack.
    private func commit(_ harness: Harness, _ request: CommitOffsetsRequest) throws {
        let (id, replies) = try harness.request(request)
        #expect(replies.isEmpty, "a commit is acknowledged only after its sync")
        var acks: [Reply] = []
        for (key, work) in harness.broker.takeSyncWork(now: harness.now) {
            acks += try Reply.decode(harness.broker.syncCompleted(key, result: .success(work.endOffset), now: harness.now))
        }
        let ack = try #require(acks.only)
        #expect(ack.header.correlationID == id)
        _ = try ack.body(CommitOffsetsResponse.self)
    }

    @Test func committedOffsetsSurviveARestartAndMembersRejoinWithTheirPartitions() throws {
        let harness = try Harness { $0.groupRejoinGraceMilliseconds = 5_000 }
        _ = try harness.call(CreateTopicRequest(name: "orders", partitions: 3), CreateTopicResponse.self)
        for partition in Int32(0)..<3 {
            for _ in 0..<(partition + 2) { try harness.produce("orders", partition, harness.randomBatch(maxRecords: 1).0) }
        }
        let member = try join(harness, "a")
        let p0 = TopicPartition(topic: "orders", partition: 0)
        let p2 = TopicPartition(topic: "orders", partition: 2)
        try commit(harness, CommitOffsetsRequest(group: "workers", memberID: member.memberID, generation: member.generation, offsets: [
            CommittedOffset(partition: p0, offset: 1, metadata: "first"), CommittedOffset(partition: p2, offset: 3),
        ]))
        try harness.reopen()
        let offsets = try harness.call(FetchOffsetsRequest(group: "workers"), FetchOffsetsResponse.self).offsets
        #expect(offsets == [CommittedOffset(partition: p0, offset: 1, metadata: "first"), CommittedOffset(partition: p2, offset: 3)])

        // Membership is in memory: the member learns it must rejoin, and keeps what it holds.
        try harness.expectError(HeartbeatRequest(group: "workers", memberID: member.memberID, generation: member.generation,
                                                 owned: member.held.sorted()), code: .unknownMember)
        let other = try join(harness, "b")
        #expect(other.held.isEmpty, "in the rejoin grace a newcomer gets nothing: the old member may still be consuming")
        let rejoined = try join(harness, "a", memberID: member.memberID, owned: member.held.sorted())
        #expect(rejoined.memberID == member.memberID)
        #expect(rejoined.held == Self.partitions("orders", 3), "a rejoining member keeps what it holds")
        var members = [rejoined, other]
        try settle(harness, &members)
        #expect(members.map(\.held.count) == [3, 0])
        harness.now += 5_000
        try settle(harness, &members)
        #expect(members.map(\.held.count).sorted() == [1, 2], "after the grace the partitions are shared")
        #expect(Set(members.flatMap(\.held)) == Self.partitions("orders", 3))

        let described = try harness.call(DescribeGroupRequest(group: "workers"), DescribeGroupResponse.self)
        let progress = Dictionary(uniqueKeysWithValues: described.partitions.map { ($0.partition.partition, $0) })
        #expect(progress[0]?.committedOffset == 1 && progress[0]?.logEndOffset == 2 && progress[0]?.lag == 1)
        #expect(progress[1]?.committedOffset == -1 && progress[1]?.lag == 3, "without a commit the lag counts from the log start")
        #expect(progress[2]?.committedOffset == 3 && progress[2]?.lag == 1)
        let listed = try harness.call(ListGroupsRequest(), ListGroupsResponse.self).groups
        #expect(listed == [ListGroupsResponse.Group(name: "workers", state: described.state, memberCount: 2)])
    }

    @Test func badJoinsAreRefusedWithReasons() throws {
        let harness = try Harness { $0.autoCreateTopics = false }
        try harness.expectError(JoinGroupRequest(group: "workers", sessionTimeoutMilliseconds: 10, topics: ["orders"]), code: .invalidRequest)
        try harness.expectError(JoinGroupRequest(group: "workers", topics: []), code: .invalidRequest)
        try harness.expectError(JoinGroupRequest(group: "", topics: ["orders"]), code: .invalidRequest)
        try harness.expectError(JoinGroupRequest(group: "workers", topics: ["orders"]), code: .unknownTopic)
        try harness.expectError(JoinGroupRequest(group: "workers", topics: ["../etc"]), code: .invalidTopicName)
        #expect(try harness.call(ListGroupsRequest(), ListGroupsResponse.self).groups.isEmpty)
    }

    @Test func aFailedSyncOfTheOffsetStoreFailsItsCommitsAndCommitsWorkAgain() throws {
        let harness = try Harness()
        _ = try harness.call(CreateTopicRequest(name: "orders", partitions: 1), CreateTopicResponse.self)
        let p0 = TopicPartition(topic: "orders", partition: 0)
        let (failedID, replies) = try harness.request(CommitOffsetsRequest(group: "g", memberID: "", generation: -1,
                                                                          offsets: [CommittedOffset(partition: p0, offset: 3)]))
        #expect(replies.isEmpty)
        let (key, _) = try #require(harness.broker.takeSyncWork(now: harness.now).only)
        let failed = try Reply.decode(harness.broker.syncCompleted(key, result: .failure(StorageError(.io, "injected")), now: harness.now))
        #expect(failed.map(\.header.correlationID) == [failedID])
        #expect(failed.map(\.header.errorCode) == [.storageError])
        #expect(try Reply.decode(harness.broker.syncCompleted(key, result: .success(100), now: harness.now)).isEmpty,
                "a late result of the failed epoch is ignored")

        try commit(harness, CommitOffsetsRequest(group: "g", memberID: "", generation: -1, offsets: [CommittedOffset(partition: p0, offset: 5)]))
        try harness.reopenAfterCrash()
        #expect(try harness.call(FetchOffsetsRequest(group: "g"), FetchOffsetsResponse.self).offsets == [CommittedOffset(partition: p0, offset: 5)])
    }
}
