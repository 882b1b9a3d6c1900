import Foundation
import SpoolBroker
import SpoolStorage
import SpoolWire
import Testing

@Suite struct ErrorReplyTests {
    static let invalidNames = ["..", ".", "a/b", "", String(repeating: "t", count: 300), "../etc", "a b", "é",
                               // One character of 601 scalars: its error message is over 1024 bytes.
                               "a" + String(repeating: "\u{301}", count: 600)]

    @Test(arguments: invalidNames)
    func rejectsInvalidTopicNamesInEveryRequest(name: String) throws {
        let h = try Harness("rejectsInvalidTopicNames(\(name.prefix(20)))")
        let (batch, _) = h.randomBatch()
        try h.expectError(ProduceRequest(topic: name, partition: 0), batch: batch, code: .invalidTopicName)
        try h.expectError(FetchRequest(topic: name, partition: 0, offset: 0, maxWaitMilliseconds: 1000), code: .invalidTopicName)
        try h.expectError(ListOffsetsRequest(topic: name, partition: 0, spec: .latest), code: .invalidTopicName)
        try h.expectError(CreateTopicRequest(name: name, partitions: 1), code: .invalidTopicName)
        // Metadata answers per topic.
        let metadata = try h.call(MetadataRequest(topics: [name, "orders"]), MetadataResponse.self)
        #expect(metadata.topics.map(\.name) == [name, "orders"])
        #expect(metadata.topics.map(\.errorCode) == [.invalidTopicName, .unknownTopic])
        // Nothing was created on disk, and nothing parked.
        let entries = try FileManager.default.contentsOfDirectory(atPath: h.configuration.dataDirectory)
        #expect(entries.filter { !$0.hasPrefix("@") }.isEmpty, "\(entries)")
        #expect(h.broker.nextDeadline == nil)
        #expect(try h.call(MetadataRequest(), MetadataResponse.self).topics.isEmpty)
    }

    @Test func rejectsUnknownPartitions() throws {
        let h = try Harness()
        _ = try h.call(CreateTopicRequest(name: "orders", partitions: 2), CreateTopicResponse.self)
        let (batch, _) = h.randomBatch()
        for partition in [Int32(2), -1, .max, .min] {
            let error = try h.expectError(ProduceRequest(topic: "orders", partition: partition), batch: batch, code: .unknownPartition)
            #expect(error.message.contains("\(partition)"))
            try h.expectError(FetchRequest(topic: "orders", partition: partition, offset: 0), code: .unknownPartition)
            try h.expectError(ListOffsetsRequest(topic: "orders", partition: partition, spec: .earliest), code: .unknownPartition)
        }
        #expect(try h.produce("orders", 1, batch).baseOffset == 0)
    }

    @Test func rejectsUnknownTopicsWhenAutoCreationIsOff() throws {
        let h = try Harness { $0.autoCreateTopics = false }
        let (batch, _) = h.randomBatch()
        let error = try h.expectError(ProduceRequest(topic: "ghost", partition: 0), batch: batch, code: .unknownTopic)
        #expect(error.message.contains("ghost"))
        try h.expectError(FetchRequest(topic: "ghost", partition: 0, offset: 0, maxWaitMilliseconds: 100), code: .unknownTopic)
        try h.expectError(ListOffsetsRequest(topic: "ghost", partition: 0, spec: .latest), code: .unknownTopic)
        let metadata = try h.call(MetadataRequest(topics: ["ghost"]), MetadataResponse.self)
        #expect(metadata.topics == [.init(name: "ghost", errorCode: .unknownTopic, partitions: [])])
        #expect(!FileManager.default.fileExists(atPath: "\(h.configuration.dataDirectory)/ghost"))
        // Explicit creation still works.
        _ = try h.call(CreateTopicRequest(name: "ghost", partitions: 1), CreateTopicResponse.self)
        #expect(try h.produce("ghost", batch).baseOffset == 0)
    }

    @Test func rejectsBatchesOverMaxBatchBytes() throws {
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 0, key: nil, value: [UInt8](repeating: 1, count: 500))
        let atLimit = builder.finish()
        var bigger = RecordBatchBuilder()
        bigger.append(timestamp: 0, key: nil, value: [UInt8](repeating: 1, count: 501))
        let overLimit = bigger.finish()
        #expect(overLimit.count == atLimit.count + 1)

        let h = try Harness { $0.maxBatchBytes = atLimit.count }
        #expect(try h.produce("orders", atLimit).baseOffset == 0)
        let error = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: overLimit, code: .recordTooLarge)
        #expect(error.message.contains("\(overLimit.count)"))
        #expect(try h.produce("orders", atLimit).baseOffset == 1, "the rejected batch took no offsets")
    }

    @Test func rejectsRecordsOverMaxRecordBytes() throws {
        let h = try Harness { $0.maxRecordBytes = 100 }
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 0, key: nil, value: [1])
        builder.append(timestamp: 0, key: nil, value: [UInt8](repeating: 2, count: 200))
        let error = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: builder.finish(), code: .recordTooLarge)
        #expect(error.message.contains("record 1"))
        try h.expectError(ListOffsetsRequest(topic: "orders", partition: 0, spec: .latest), code: .unknownTopic)  // nothing created
    }

    @Test func rejectsCorruptBatchesAndLeavesTheLogUnchanged() throws {
        let h = try Harness()
        var sent: [Record] = []
        let (good, goodRecords) = h.randomBatch()
        try h.produce("orders", good)
        sent += numbered(goodRecords, from: 0)

        var bad: [[UInt8]] = []
        var flipped = good
        flipped[h.rng.int(13...(good.count - 1))] ^= 0x10
        bad.append(flipped)
        bad.append(Array(good.dropLast()))            // truncated
        bad.append(good + [0])                        // trailing byte
        bad.append([])                                // empty frame
        bad.append(Array(good.prefix(30)))            // shorter than a header
        bad.append(good + good)                       // two batches in one frame
        for batch in bad {
            try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: batch, code: .corruptBatch)
        }
        var future = good
        future[12] = 2
        try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: future, code: .unsupportedVersion)

        #expect(try h.latestOffset("orders") == Int64(sent.count))
        let (next, nextRecords) = h.randomBatch()
        #expect(try h.produce("orders", next).baseOffset == Int64(sent.count), "the next good batch continues densely")
        sent += numbered(nextRecords, from: Int64(sent.count))
        #expect(try h.fetchAll("orders") == sent)
    }

    @Test func rejectsFetchesOutsideTheLogWithItsRange() throws {
        let h = try Harness()
        for _ in 0..<3 { try h.produce("orders", h.randomBatch().0) }
        let end = try h.latestOffset("orders")
        #expect(end > 0)
        for offset in [Int64(-1), .min, end + 1, .max] {
            let (id, replies) = try h.request(FetchRequest(topic: "orders", partition: 0, offset: offset, maxWaitMilliseconds: 1000))
            let reply = try #require(replies.only, "answered at once, not parked")
            #expect(reply.header.correlationID == id)
            #expect(reply.header.errorCode == .offsetOutOfRange)
            let error = try reply.error()
            #expect(error.details == ["earliest": 0, "latest": end])
            #expect(error.message.contains("\(offset)"))
        }
        #expect(h.broker.nextDeadline == nil)
        #expect(try h.fetch("orders", from: end).response.logEndOffset == end, "the end itself is in range")
    }

    @Test(arguments: [UInt8(0), 2, 255])
    func rejectsOtherProtocolVersions(version: UInt8) throws {
        let h = try Harness("rejectsOtherProtocolVersions(\(version))")
        let id = h.correlationID()
        for opCode in [OpCode.produce, .fetch, .metadata, OpCode(rawValue: 77)] {
            let header = FrameHeader(version: version, opCode: opCode, correlationID: id)
            let error = try h.expectError([header.encoded(), MetadataRequest().encoded()], id: id, opCode: opCode, code: .unsupportedVersion)
            #expect(error.message.contains("\(version)"))
        }
    }

    @Test(arguments: [UInt8(0), 17, 99, 255])
    func rejectsUnknownOperations(opCode: UInt8) throws {
        let h = try Harness("rejectsUnknownOperations(\(opCode))")
        let id = h.correlationID()
        let header = FrameHeader(opCode: OpCode(rawValue: opCode), correlationID: id)
        try h.expectError([header.encoded(), [1, 2, 3]], id: id, opCode: OpCode(rawValue: opCode), code: .unsupportedOperation)
    }

    @Test func rejectsMissingExtraAndMalformedFrames() throws {
        let h = try Harness()
        let (batch, _) = h.randomBatch()
        let produce = ProduceRequest(topic: "orders", partition: 0).encoded()
        let fetch = FetchRequest(topic: "orders", partition: 0, offset: 0).encoded()
        let cases: [(OpCode, [[UInt8]], ErrorCode)] = [
            (.produce, [], .malformedRequest),
            (.produce, [produce], .malformedRequest),
            (.produce, [produce, batch, batch], .malformedRequest),
            (.fetch, [], .malformedRequest),
            (.fetch, [fetch, []], .malformedRequest),
            (.metadata, [MetadataRequest().encoded(), []], .malformedRequest),
            (.listOffsets, [], .malformedRequest),
            (.createTopic, [CreateTopicRequest(name: "x").encoded(), []], .malformedRequest),
            (.produce, [Array(produce.dropLast()), batch], .malformedRequest),
            (.fetch, [fetch + [0], ], .malformedRequest),
            (.fetch, [[]], .malformedRequest),
            (.metadata, [[0xFF, 0xFF, 0xFF, 0x7F]], .malformedRequest),
            (.listOffsets, [hexBytes("0100 74 00000000 fdffffffffffffff")], .invalidRequest),
            (.createTopic, [CreateTopicRequest(name: "zero", partitions: 0).encoded()], .invalidRequest),
            (.createTopic, [CreateTopicRequest(name: "negative", partitions: -1).encoded()], .invalidRequest),
            (.createTopic, [CreateTopicRequest(name: "huge", partitions: DataDirectory.maxPartitions + 1).encoded()], .invalidRequest),
        ]
        for (opCode, body, code) in cases {
            let id = h.correlationID()
            try h.expectError([FrameHeader(opCode: opCode, correlationID: id).encoded()] + body, id: id, opCode: opCode, code: code)
        }
        #expect(try h.call(MetadataRequest(), MetadataResponse.self).topics.isEmpty, "no request above created anything")
        #expect(try h.produce("orders", batch).baseOffset == 0)
    }

    @Test func dropsMessagesWithoutAReadableHeaderAndKeepsWorking() throws {
        let h = try Harness()
        let body = MetadataRequest().encoded()
        var badMagic = FrameHeader(opCode: .metadata, correlationID: 1).encoded()
        badMagic[0] = 0x54
        let garbage: [[[UInt8]]] = [
            [],
            [[]],
            [[0x53]],
            [Array(FrameHeader(opCode: .metadata, correlationID: 1).encoded().dropLast()), body],
            [FrameHeader(opCode: .metadata, correlationID: 1).encoded() + [0], body],
            [badMagic, body],
            [h.rng.bytes(16), body],
        ]
        for frames in garbage where frames.first?.first != 0x53 || frames.first?.count != 16 || frames.first?[3] == 1 {
            #expect(try h.send(frames).isEmpty, "\(frames.map { $0.count })")
        }
        let (batch, records) = h.randomBatch()
        #expect(try h.produce("orders", batch).baseOffset == 0)
        #expect(try h.fetchAll("orders") == numbered(records, from: 0))
    }

    @Test func aRequestHeaderWithTheReplyFlagOrAnErrorCodeIsAnsweredMalformed() throws {
        let h = try Harness()
        let body = MetadataRequest().encoded()
        for header in [FrameHeader(opCode: .metadata, isReply: true, correlationID: 7),
                       FrameHeader(opCode: .metadata, errorCode: .unknownTopic, correlationID: 8)] {
            let error = try h.expectError([header.encoded(), body], id: header.correlationID, opCode: .metadata, code: .malformedRequest)
            #expect(error.message.contains(header.isReply ? "reply flag" : "error code"))
        }
        _ = try h.call(MetadataRequest(), MetadataResponse.self)  // and the connection keeps working
    }

    @Test func hostileRequestsNeverCrashTheBroker() throws {
        let h = try Harness()
        var answered = 0
        for _ in 0..<2_000 {
            let opCode = OpCode(rawValue: UInt8(h.rng.int(0...6)))
            let id = h.correlationID()
            var frames = [FrameHeader(opCode: opCode, correlationID: id).encoded()]
            for _ in 0..<h.rng.int(0...3) { frames.append(h.rng.bytes(h.rng.int(0...80))) }
            let replies = try h.send(frames)
            #expect(replies.count <= 1)
            for reply in replies {
                answered += 1
                #expect(reply.header.correlationID == id)
                #expect(reply.header.opCode == opCode)
            }
        }
        print("hostile requests answered at once:", answered)
        let (batch, _) = h.randomBatch()
        _ = try h.produce("still-working", batch)
    }
}

/// Bytes from a hex string; whitespace is ignored.
func hexBytes(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

/// The broker checks what a batch's header says against its records, so that nothing built on
/// the header (lookups by time, retention by age) can be misled by a client.
@Suite struct StrictBatchTests {
    /// A batch with `timestamps` whose header's maxTimestamp is overwritten with `maxTimestamp`.
    static func batch(_ timestamps: [Int64], maxTimestamp: Int64) -> [UInt8] {
        var builder = RecordBatchBuilder()
        for (index, timestamp) in timestamps.enumerated() { builder.append(timestamp: timestamp, key: nil, value: [UInt8(index)]) }
        var bytes = builder.finish()
        withUnsafeBytes(of: maxTimestamp.littleEndian) { bytes.replaceSubrange(31..<39, with: $0) }
        let crc = bytes.withUnsafeBytes { RecordBatch.computeChecksum($0) }
        withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(13..<17, with: $0) }
        return bytes
    }

    /// The bug a client written from the spec found: a header whose maxTimestamp is below its
    /// records' made a lookup by time skip them (`spool tail --from-time`).
    @Test func aBatchWhoseHeaderLiesAboutItsTimestampsIsRefusedAndLookupsByTimeStayRight() throws {
        let h = try Harness()
        try h.produce("orders", Self.batch([1_000, 1_100], maxTimestamp: 1_100))
        let error = try h.expectError(ProduceRequest(topic: "orders", partition: 0), batch: Self.batch([2_000, 3_000], maxTimestamp: 2_000),
                                      code: .inconsistentBatch)
        #expect(error.details["field"] == RecordBatch.CheckedField.maxTimestamp.rawValue)
        #expect(error.message.contains("maxTimestamp 2000 is not the largest record timestamp 3000"))
        try h.produce("orders", Self.batch([2_000, 3_000], maxTimestamp: 3_000))
        #expect(try h.latestOffset("orders") == 4, "the refused batch took no offsets")
        for (time, first) in [(Int64(0), Int64(0)), (1_050, 1), (1_101, 2), (2_500, 3), (3_000, 3), (3_001, 4)] {
            let found = try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: .timestamp(time)), ListOffsetsResponse.self).offset
            #expect(found == first, "the first record at or after \(time) ms")
        }
        // A refused batch to a topic that does not exist creates nothing.
        try h.expectError(ProduceRequest(topic: "fresh", partition: 0), batch: Self.batch([5, 9], maxTimestamp: 5), code: .inconsistentBatch)
        #expect(try h.call(MetadataRequest(topics: ["fresh"]), MetadataResponse.self).topics.first?.errorCode == .unknownTopic)
    }
}
