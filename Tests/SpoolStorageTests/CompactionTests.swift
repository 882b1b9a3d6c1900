import Foundation
@_spi(Testing) @testable import SpoolStorage
import SpoolTesting
import SpoolWire
import Testing

/// The log cleaner against a model: random appends (tombstones among them), passes that finish,
/// passes cut by a crash before or in the middle of their swap, clean and crashed restarts. After
/// every step the log holds exactly the records the model keeps, at their original offsets; every
/// key's last record survives (until it is a tombstone past `delete.retention.ms`); the key index
/// still answers every key's last offset and history.
@Suite struct CompactionTests {
    static let keys: [[UInt8]] = (0..<8).map { Array("account-\($0)".utf8) }
    static let deleteRetention: Int64 = 40

    struct Record: Equatable {
        let offset: Int64
        let key: [UInt8]?
        let value: [UInt8]
        let timestamp: Int64
    }

    /// Every record appended and not removed, and every key's last offset ever.
    struct Model {
        var records: [Record] = []
        var last: [[UInt8]: Int64] = [:]

        /// What a pass over offsets below `end` at `now` removes in `ranges` (the segments whose
        /// copies were swapped in): the records of a key before its last one below `end`, and
        /// tombstones older than the retention.
        mutating func clean(below end: Int64, now: Int64, in ranges: [Range<Int64>]) {
            var lastInPass: [[UInt8]: Int64] = [:]
            for record in records where record.offset < end { if let key = record.key { lastInPass[key] = record.offset } }
            records.removeAll { record in
                guard let key = record.key, ranges.contains(where: { $0.contains(record.offset) }) else { return false }
                let expiredTombstone = record.value.isEmpty && record.timestamp < now - CompactionTests.deleteRetention
                return lastInPass[key] != record.offset || expiredTombstone
            }
        }
    }

    static var configuration: LogConfiguration {
        LogConfiguration(segmentBytes: 1_500, indexIntervalBytes: 200, keyIndexKeysInMemory: 5, cleanupPolicy: .compact,
                         deleteRetentionMilliseconds: deleteRetention)
    }

    /// Reads the whole log with fetches of random sizes, checking every batch in full.
    static func readAll(_ log: PartitionLog, using rng: inout SeededGenerator) throws -> [Record] {
        var offset = log.logStartOffset
        var records: [Record] = []
        while let slice = try log.read(from: offset, maxBytes: Int.random(in: 1...900, using: &rng), endOffset: log.logEndOffset) {
            for batch in try splitBatches(try slice.bytes()) {
                try batch.withUnsafeBytes { bytes in
                    let header = try RecordBatch.validate(bytes)
                    #expect(header.baseOffset >= offset || records.isEmpty, "batches tile the offsets")
                    records += try RecordBatch.records(in: bytes).map { Record(offset: $0.offset, key: $0.key, value: $0.value, timestamp: $0.timestamp) }
                }
            }
            #expect(slice.nextOffset > offset)
            offset = slice.nextOffset
        }
        #expect(offset == log.logEndOffset, "the reads reach the end")
        return records
    }

    static func check(_ log: PartitionLog, _ model: Model, using rng: inout SeededGenerator, _ step: String) throws {
        let stored = try readAll(log, using: &rng)
        #expect(stored == model.records, "\(step): \(stored.count) records stored, the model keeps \(model.records.count)")
        for key in keys {
            #expect(try log.lastOffset(ofKey: key) == model.last[key], "\(step): last offset of \(String(decoding: key, as: UTF8.self))")
            var history: [Int64] = []
            var offset: Int64 = 0
            while true {
                let found = try log.read(key: key, from: offset, maxBytes: Int.random(in: 1...500, using: &rng), endOffset: log.logEndOffset)
                for slice in found.slices {
                    for batch in try splitBatches(try slice.bytes()) {
                        history += try batch.withUnsafeBytes { try RecordBatch.records(in: $0) }.filter { $0.key == key && $0.offset >= offset }.map(\.offset)
                    }
                }
                guard !found.slices.isEmpty else { break }
                offset = found.nextOffset
            }
            #expect(history == model.records.filter { $0.key == key }.map(\.offset), "\(step): history of \(String(decoding: key, as: UTF8.self))")
        }
    }

    @Test(arguments: 0..<4)
    func theLastRecordOfEveryKeyAndEveryOffsetSurvivePassesAndCrashes(seed: Int) throws {
        var rng = SeededGenerator.logged("compaction(\(seed))")
        try withTemporaryDirectory { directory in
            let path = "\(directory)/balances/0"
            var log = try PartitionLog(directory: path, configuration: Self.configuration, logger: .quiet)
            var model = Model()
            var removedSomething = false
            for step in 0..<240 {
                let now = Int64(step)
                switch Int.random(in: 0..<100, using: &rng) {
                case 0..<70:
                    var builder = RecordBatchBuilder()
                    var appended: [(key: [UInt8]?, value: [UInt8])] = []
                    for _ in 0..<Int.random(in: 1...4, using: &rng) {
                        let key = Int.random(in: 0..<8, using: &rng) == 0 ? nil : Self.keys.randomElement(using: &rng)!
                        let value = key != nil && Int.random(in: 0..<6, using: &rng) == 0 ? [] : Array("balance \(step)".utf8)
                        builder.append(timestamp: now, key: key, value: value)
                        appended.append((key, value))
                    }
                    let result = try builder.finish().withUnsafeBytes { try log.append($0) }
                    for (number, record) in appended.enumerated() {
                        let offset = result.baseOffset + Int64(number)
                        model.records.append(Record(offset: offset, key: record.key, value: record.value, timestamp: now))
                        if let key = record.key { model.last[key] = offset }
                    }
                case 70..<85:
                    guard let pass = try log.cleaningPass(keepingNewestSegments: Int.random(in: 1...2, using: &rng), nowMilliseconds: now) else { continue }
                    let cleaned = try pass.run()
                    let before = log.sizeInBytes
                    let freed = try log.install(cleaned)
                    #expect(log.sizeInBytes == before - freed)
                    model.clean(below: pass.endOffset, now: now, in: Self.ranges(of: cleaned.copies, in: pass))
                    removedSomething = removedSomething || cleaned.report.recordsRemoved > 0
                case 85..<90:
                    // A crash after the copies were written, before the swap: nothing changes.
                    guard let pass = try log.cleaningPass(keepingNewestSegments: 1, nowMilliseconds: now) else { continue }
                    _ = try pass.run()
                    log.close()
                    log = try PartitionLog(directory: path, configuration: Self.configuration, mode: .afterCrash, logger: .quiet)
                    #expect(try files(in: path, suffix: LogSegment.cleanedSuffix).isEmpty, "copies never swapped in are deleted")
                case 90..<94:
                    // A crash in the middle of the swap: some copies whole, one with only its indexes.
                    guard let pass = try log.cleaningPass(keepingNewestSegments: 1, nowMilliseconds: now) else { continue }
                    let cleaned = try pass.run()
                    let whole = Int.random(in: 0...cleaned.copies.count, using: &rng)
                    for (number, copy) in cleaned.copies.enumerated() where number <= whole && number < cleaned.copies.count {
                        let target = "\(path)/\(LogSegment.fileName(baseOffset: copy.baseOffset, suffix: ""))"
                        try Syscall.rename(copy.indexPath, to: target + LogSegment.indexSuffix)
                        try Syscall.rename(copy.timeIndexPath, to: target + LogSegment.timeIndexSuffix)
                        if number < whole { try Syscall.rename(copy.logPath, to: target + LogSegment.logSuffix) }
                    }
                    log.close()
                    log = try PartitionLog(directory: path, configuration: Self.configuration, mode: .afterCrash, logger: .quiet)
                    model.clean(below: pass.endOffset, now: now, in: Self.ranges(of: Array(cleaned.copies.prefix(whole)), in: pass))
                case 94..<97:
                    _ = log.takeSyncWork()
                    try log.closeCleanly()
                    log = try PartitionLog(directory: path, configuration: Self.configuration, mode: .afterCleanShutdown, logger: .quiet)
                default:
                    log.close()
                    log = try PartitionLog(directory: path, configuration: Self.configuration, mode: .afterCrash, logger: .quiet)
                }
                try Self.check(log, model, using: &rng, "step \(step)")
            }
            #expect(removedSomething, "the passes removed records")
        }
    }

    /// The offset ranges of the segments `copies` replace.
    static func ranges(of copies: [CleanedSegments.Copy], in pass: LogCleaning) -> [Range<Int64>] {
        copies.map { copy in
            let source = pass.sources.first { $0.baseOffset == copy.baseOffset }!
            return copy.baseOffset..<source.nextOffset
        }
    }

    /// A pass keeps the newest segments, records without a key, and the last record of each key;
    /// a segment that loses nothing is not rewritten; a tombstone goes once it is old enough.
    @Test func aPassKeepsTheLastRecordOfEachKeyAndRemovesOldTombstones() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/balances/0"
            let log = try PartitionLog(directory: path, configuration: Self.configuration, logger: .quiet)
            for round in 0..<30 {
                var builder = RecordBatchBuilder()
                builder.append(timestamp: Int64(round), key: Self.keys[0], value: Array("a\(round)".utf8))
                builder.append(timestamp: Int64(round), key: nil, value: Array("keyless \(round)".utf8))
                builder.append(timestamp: Int64(round), key: Self.keys[1], value: round == 3 ? [] : Array("b\(round)".utf8))
                _ = try builder.finish().withUnsafeBytes { try log.append($0) }
                if round == 3 { break }
            }
            for round in 4..<40 {
                var builder = RecordBatchBuilder()
                builder.append(timestamp: Int64(round), key: Self.keys[0], value: Array("a\(round)".utf8))
                _ = try builder.finish().withUnsafeBytes { try log.append($0) }
            }
            #expect(log.segmentCount >= 3)
            let pass = try #require(try log.cleaningPass(keepingNewestSegments: 1, nowMilliseconds: 20))
            let cleaned = try pass.run()
            #expect(cleaned.report.tombstonesRemoved == 0, "a tombstone younger than delete.retention.ms stays")
            _ = try log.install(cleaned)
            var rng = SeededGenerator.logged("aPassKeeps")
            let kept = try Self.readAll(log, using: &rng)
            #expect(kept.filter { $0.key == nil }.count == 4, "records without a key stay")
            #expect(kept.filter { $0.key == Self.keys[1] }.map(\.value) == [[]], "key 1's tombstone is its last record")
            #expect(try log.lastOffset(ofKey: Self.keys[1]) == 11)
            let later = try #require(try log.cleaningPass(keepingNewestSegments: 1, nowMilliseconds: 3 + Self.deleteRetention + 1))
            let second = try later.run()
            #expect(second.report.tombstonesRemoved == 1)
            _ = try log.install(second)
            #expect(try Self.readAll(log, using: &rng).filter { $0.key == Self.keys[1] }.isEmpty, "the expired tombstone is gone")
            #expect(try log.lastOffset(ofKey: Self.keys[1]) == 11, "the key's last offset stays for conditional appends")
            let third = try #require(try log.cleaningPass(keepingNewestSegments: 1, nowMilliseconds: 100)).run()
            #expect(third.copies.isEmpty && third.report.recordsRemoved == 0, "nothing left to remove: no copy written")
        }
    }

    /// A producer may not send a compacted batch; a reader accepts one.
    @Test func onlyTheCleanerWritesCompactedBatches() throws {
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 1, key: Self.keys[0], value: Array("x".utf8))
        let header = try builder.finish().withUnsafeBytes { try RecordBatch.validate($0) }
        let compacted = RecordBatch.compacted(header, recordCount: 0, records: [])
        let count = try compacted.withUnsafeBytes { bytes throws(WireError) in try RecordBatch.validate(bytes).recordCount }
        #expect(count == 0)
        #expect(throws: WireError.self) {
            try compacted.withUnsafeBytes { bytes throws(WireError) in try RecordBatch.validate(bytes, checkingTimestamps: true, allowingCompacted: false) }
        }
    }
}
