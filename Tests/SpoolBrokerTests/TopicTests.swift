import SpoolBroker
import SpoolStorage
import SpoolWire
import Testing

@Suite struct TopicTests {
    @Test func createsATopicThatMetadataLists() throws {
        let h = try Harness()
        #expect(try h.call(CreateTopicRequest(name: "events", partitions: 3), CreateTopicResponse.self)
                == CreateTopicResponse(name: "events", partitions: 3))
        let all = try h.call(MetadataRequest(), MetadataResponse.self)
        #expect(all.brokerVersion == Broker.version)
        #expect(all.topics == [.init(name: "events", partitions: (0..<3).map { .init(partition: $0, logStartOffset: 0, logEndOffset: 0) })])

        let error = try h.expectError(CreateTopicRequest(name: "events", partitions: 3), code: .topicAlreadyExists)
        #expect(error.message.contains("events"))
        try h.expectError(CreateTopicRequest(name: "events", partitions: 1), code: .topicAlreadyExists)

        // Auto-created topics join the list, sorted by name; offsets follow produces.
        let (batch, records) = h.randomBatch()
        try h.produce("alpha", batch)
        try h.produce("events", 2, batch)
        let after = try h.call(MetadataRequest(), MetadataResponse.self)
        #expect(after.topics.map(\.name) == ["alpha", "events"])
        #expect(after.topics[1].partitions.map(\.logEndOffset) == [0, 0, Int64(records.count)])

        let some = try h.call(MetadataRequest(topics: ["events", "missing", "alpha"]), MetadataResponse.self)
        #expect(some.topics.map(\.name) == ["events", "missing", "alpha"])
        #expect(some.topics.map(\.errorCode) == [.none, .unknownTopic, .none])
        #expect(some.topics[1].partitions.isEmpty)
    }

    @Test func listsEarliestLatestAndOffsetsByTimestamp() throws {
        let h = try Harness()
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 1000, key: nil, value: [1])
        builder.append(timestamp: 1001, key: nil, value: [2])
        try h.produce("orders", builder.finish())  // offsets 0, 1
        builder = RecordBatchBuilder()
        builder.append(timestamp: 2000, key: nil, value: [3])
        builder.append(timestamp: 2005, key: nil, value: [4])
        builder.append(timestamp: 2010, key: nil, value: [5])
        try h.produce("orders", builder.finish())  // offsets 2, 3, 4
        builder = RecordBatchBuilder()
        builder.append(timestamp: 3000, key: nil, value: [6])
        try h.produce("orders", builder.finish())  // offset 5

        func offset(_ spec: OffsetSpec) throws -> Int64 {
            let response = try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: spec), ListOffsetsResponse.self)
            #expect(response.partition == 0)
            return response.offset
        }
        #expect(try offset(.earliest) == 0)
        #expect(try offset(.latest) == 6)
        #expect(try offset(.timestamp(0)) == 0)
        #expect(try offset(.timestamp(1000)) == 0)
        #expect(try offset(.timestamp(1500)) == 2)
        #expect(try offset(.timestamp(2000)) == 2)
        #expect(try offset(.timestamp(2011)) == 5)
        #expect(try offset(.timestamp(3000)) == 5)
        #expect(try offset(.timestamp(3001)) == 6, "after every record: the latest offset")
        #expect(try offset(.timestamp(.max)) == 6)
    }

    @Test func listsOnlySyncedOffsetsUnderFsyncAlways() throws {
        let h = try Harness(fsync: .always)
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 1000, key: nil, value: [1])
        try h.produce("orders", builder.finish())  // synced by the harness
        builder = RecordBatchBuilder()
        builder.append(timestamp: 2000, key: nil, value: [2])
        let (_, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: builder.finish())
        #expect(replies.isEmpty)
        #expect(try h.latestOffset("orders") == 1)
        let byTime = try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: .timestamp(2500)), ListOffsetsResponse.self)
        #expect(byTime.offset == 1, "past every record: the visible end, not the unsynced log end")
    }
}
