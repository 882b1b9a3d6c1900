import Foundation
import SpoolBroker
import SpoolStorage
import SpoolTesting
import SpoolWire
import Testing

/// `cleanup.policy: compact` through the broker: the cleaner's passes are planned on the loop,
/// run apart, installed on the loop; fetches and key reads see each key's last record at its
/// offset; retention deletes nothing; producers cannot send compacted batches.
@Suite struct CompactionBrokerTests {
    static let keys = (0..<10).map { Array("saga-\($0)".utf8) }
    static let time: Int64 = 1_700_000_000_000

    /// Every record from offset 0, following each reply's batches (a compacted batch may cover
    /// offsets without records, or hold none).
    static func readAll(_ h: Harness, _ topic: String) throws -> [Record] {
        var offset: Int64 = 0
        var records: [Record] = []
        let end = try h.latestOffset(topic)
        while offset < end {
            let (_, reply) = try h.fetch(topic, 0, from: offset, maxBytes: 700)
            let batches = try reply.fetchedBatches()
            let last = try #require(batches.last, "a fetch below the end returns a batch")
            records += batches.flatMap(\.records).filter { $0.offset >= offset }
            offset = try last.bytes.withUnsafeBytes { try RecordBatch.readHeader($0) }.nextOffset
        }
        return records
    }

    @Test func theCleanerKeepsEachKeysLastRecordAtItsOffsetAndRetentionDeletesNothing() async throws {
        let h = try Harness {
            $0.log.segmentBytes = 4096
            $0.log.cleanupPolicy = .compact
            $0.log.retentionMilliseconds = 1
            $0.retentionCheckIntervalMilliseconds = 60_000
        }
        try h.createTopic("sagas")
        var produced: [Record] = []
        while try h.segmentBaseOffsets("sagas").count < 6 {
            var builder = RecordBatchBuilder()
            let key = Self.keys[h.rng.int(0...9)]
            let value = Array("state \(produced.count)".utf8)
            builder.append(timestamp: Self.time, key: key, value: value)
            let offset = try h.produce("sagas", builder.finish()).baseOffset
            produced.append(Record(offset: offset, timestamp: Self.time, key: key, value: value, headers: []))
        }
        h.broker.enforceRetention(now: h.now, wallClockMilliseconds: Self.time + 3_600_000)
        #expect(try h.segmentBaseOffsets("sagas").count == 6, "compact alone never deletes segments")

        let (key, pass) = try #require(h.broker.takeCleaningPass(now: h.now, wallClockMilliseconds: Self.time))
        #expect(key.topic.description == "sagas" && pass.segmentCount == 4, "the active segment and the one before it are left alone")
        h.broker.finishCleaning(key, Result { () throws(StorageError) in try pass.run() })
        #expect(h.broker.takeCleaningPass(now: h.now + 60_000, wallClockMilliseconds: Self.time).map(\.0) == nil,
                "nothing sealed since: no second pass")

        let cleanedEnd = pass.endOffset
        var lastInPass: [[UInt8]: Int64] = [:]
        for record in produced where record.offset < cleanedEnd { lastInPass[record.key!] = record.offset }
        let expected = produced.filter { $0.offset >= cleanedEnd || lastInPass[$0.key!] == $0.offset }
        for reopened in [false, true] {
            if reopened { try h.reopen() }
            let stored = try Self.readAll(h, "sagas")
            #expect(stored == expected, "kept: \(stored.count) of \(produced.count), expected \(expected.count)")
            for key in Self.keys {
                let last = produced.last { $0.key == key }
                let answer = try h.call(FetchKeyRequest(topic: "sagas", partition: 0, key: key, offset: 0), FetchKeyResponse.self)
                #expect(answer.lastOffset == last?.offset ?? -1, "the key index still knows every key's last offset")
            }
        }
        #expect(try h.latestOffset("sagas") == Int64(produced.count), "offsets never change")
    }

    @Test func aProducerCannotSendACompactedBatch() throws {
        let h = try Harness()
        try h.createTopic("sagas")
        var builder = RecordBatchBuilder()
        builder.append(timestamp: Self.time, key: Self.keys[0], value: Array("x".utf8))
        let plain = builder.finish()
        let header = try plain.withUnsafeBytes { try RecordBatch.validate($0) }
        let records = Array(plain[RecordBatch.headerSize...])
        let compacted = RecordBatch.compacted(header, recordCount: 1, records: records)
        let error = try h.expectError(ProduceRequest(topic: "sagas", partition: 0), batch: compacted, code: .inconsistentBatch)
        #expect(error.message.contains("compacted"))
    }
}
