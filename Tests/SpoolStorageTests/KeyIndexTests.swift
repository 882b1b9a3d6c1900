import Foundation
@_spi(Testing) @testable import SpoolStorage
import SpoolTesting
import SpoolWire
import Testing

/// The key index against a model: every key's last offset stays exact (a conditional append
/// relies on it, "no record yet" included) and a key's records are read back in full, through
/// rolls, index files, clean and crashed restarts, cuts and retention.
@Suite struct KeyIndexTests {
    static let keys: [[UInt8]] = (0..<24).map { Array("order-\($0)".utf8) }
    static let neverUsed: [UInt8] = Array("order-never".utf8)

    /// What the index must answer: every record appended and not cut, with its key.
    struct Model {
        var records: [(offset: Int64, key: [UInt8]?)] = []
        /// Last offset of each key, kept after retention deleted its records.
        var last: [[UInt8]: Int64] = [:]

        mutating func cut(to offset: Int64) {
            records.removeAll { $0.offset >= offset }
            last = [:]
            for record in records { if let key = record.key { last[key] = record.offset } }
        }
    }

    static func batch(_ keys: [[UInt8]?], timestamp: Int64) -> [UInt8] {
        var builder = RecordBatchBuilder()
        for (number, key) in keys.enumerated() {
            builder.append(timestamp: timestamp, key: key, value: Array("value-\(number)-\(timestamp)".utf8))
        }
        return builder.finish()
    }

    static func configuration(retentionBytes: Int64? = nil) -> LogConfiguration {
        LogConfiguration(segmentBytes: 2_000, indexIntervalBytes: 256, retentionBytes: retentionBytes, keyIndexKeysInMemory: 6)
    }

    /// Checks every key's last offset, and the records of a few keys from random offsets.
    static func check(_ log: PartitionLog, _ model: Model, using rng: inout SeededGenerator, _ step: String) throws {
        for key in keys + [neverUsed] {
            let found = try log.lastOffset(ofKey: key)
            #expect(found == model.last[key], "\(step): last offset of \(String(decoding: key, as: UTF8.self)): \(String(describing: found)), expected \(String(describing: model.last[key])), log \(log.logStartOffset)..<\(log.logEndOffset)")
        }
        for _ in 0..<3 {
            let key = keys.randomElement(using: &rng)!
            let from = Int64.random(in: 0...max(log.logEndOffset, 1), using: &rng)
            var offset = from
            var read: [Int64] = []
            while true {
                let found = try log.read(key: key, from: offset, maxBytes: Int.random(in: 1...600, using: &rng), endOffset: log.logEndOffset)
                for slice in found.slices {
                    let records = try splitBatches(try slice.bytes()).flatMap { batch in try batch.withUnsafeBytes { try RecordBatch.records(in: $0) } }
                    read += records.filter { $0.key == key && $0.offset >= offset }.map(\.offset)
                }
                guard !found.slices.isEmpty else { break }
                offset = found.nextOffset
            }
            let expected = model.records.filter { $0.key == key && $0.offset >= max(from, log.logStartOffset) }.map(\.offset)
            #expect(read == expected, "\(step): records of \(String(decoding: key, as: UTF8.self)) from \(from)")
        }
    }

    @Test(arguments: 0..<4)
    func lastOffsetsAndHistoriesStayExactThroughRestartsCutsAndRetention(seed: Int) throws {
        var rng = SeededGenerator.logged("keyIndex(\(seed))")
        try withTemporaryDirectory { directory in
            let path = "\(directory)/events/0"
            var log = try PartitionLog(directory: path, configuration: Self.configuration(), logger: .quiet)
            var model = Model()
            var boundaries: [Int64] = []
            for step in 0..<220 {
                switch Int.random(in: 0..<100, using: &rng) {
                case 0..<80:
                    let keys: [[UInt8]?] = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
                        Int.random(in: 0..<6, using: &rng) == 0 ? nil : Self.keys[Int.random(in: 0..<(step < 100 ? 12 : 24), using: &rng)]
                    }
                    let batch = Self.batch(keys, timestamp: Int64(step))
                    let result = try batch.withUnsafeBytes { try log.append($0) }
                    boundaries.append(result.baseOffset)
                    for (number, key) in keys.enumerated() {
                        model.records.append((result.baseOffset + Int64(number), key))
                        if let key { model.last[key] = result.baseOffset + Int64(number) }
                    }
                case 80..<86:
                    _ = log.takeSyncWork()
                    try log.closeCleanly()
                    log = try PartitionLog(directory: path, configuration: Self.configuration(), mode: .afterCleanShutdown, logger: .quiet)
                case 86..<92:
                    log.close()
                    log = try PartitionLog(directory: path, configuration: Self.configuration(), mode: .afterCrash, logger: .quiet)
                case 92..<96:
                    let candidates = boundaries.filter { $0 >= log.logStartOffset }
                    guard let cut = candidates.suffix(8).randomElement(using: &rng) else { continue }
                    try log.truncate(to: cut)
                    boundaries.removeAll { $0 >= cut }
                    let retiredLast = model.last
                    model.cut(to: cut)
                    // Keys whose records retention deleted keep their last offset (below the cut).
                    for (key, offset) in retiredLast where offset < log.logStartOffset { model.last[key] = offset }
                default:
                    log.configuration.retentionBytes = Int64(log.sizeInBytes / 2)
                    _ = try log.applyRetention(nowMilliseconds: 0)
                    log.configuration.retentionBytes = nil
                }
                try Self.check(log, model, using: &rng, "step \(step)")
            }
        }
    }

    /// A damaged index file after a clean close (flipped bytes, a cut tail) is noticed and rebuilt
    /// from the log: the answers stay exact.
    @Test func aDamagedIndexFileIsRebuiltFromTheLog() throws {
        var rng = SeededGenerator.logged("aDamagedIndexFileIsRebuiltFromTheLog")
        try withTemporaryDirectory { directory in
            let path = "\(directory)/events/0"
            var log = try PartitionLog(directory: path, configuration: Self.configuration(), logger: .quiet)
            var model = Model()
            for step in 0..<60 {
                let key = Self.keys[step % Self.keys.count]
                let result = try Self.batch([key], timestamp: Int64(step)).withUnsafeBytes { try log.append($0) }
                model.records.append((result.baseOffset, key))
                model.last[key] = result.baseOffset
            }
            _ = log.takeSyncWork()
            try log.closeCleanly()
            let runs = try files(in: path, suffix: ".keys")
            #expect(runs.count >= 3, "the active run was written to files as it filled: \(runs)")
            var flipped = try fileBytes(runs[0])
            flipped[flipped.count / 2] ^= 0xff
            try writeFile(runs[0], flipped)
            try writeFile(runs[1], Array(try fileBytes(runs[1]).dropLast(7)))
            log = try PartitionLog(directory: path, configuration: Self.configuration(), mode: .afterCleanShutdown, logger: .quiet)
            try Self.check(log, model, using: &rng, "after damage")
        }
    }
}
