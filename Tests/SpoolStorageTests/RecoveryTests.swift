import SpoolTesting
import Foundation
@_spi(Testing) @testable import SpoolStorage
import SpoolWire
import Testing

/// The crash matrix: damage the files the way crashes and bad disks do, reopen, and check that the
/// log keeps exactly a prefix of whole batches, reports what it cut, and appends continue densely.
@Suite struct RecoveryTests {
    enum Damage: String, CaseIterable, Sendable {
        case truncateActiveLog, garbleActiveLogTail, appendGarbageToActiveLog, appendZerosToActiveLog
        case deleteActiveIndex, corruptActiveIndex, deleteSealedIndex, corruptSealedIndex
    }

    /// The expected outcome of one damage.
    private struct Expectation {
        /// Batches of the model that survive.
        var survivingBatches: Int
        /// The damaged file whose report is expected, or nil for no report.
        var reportPath: String?
        var truncatedBytes = 0
        var indexRebuilt = false
        var reasonContains: String?
    }

    @Test(arguments: Damage.allCases, [1024, 16 << 10])
    func reopenKeepsExactPrefixOfWholeBatches(damage: Damage, segmentBytes: Int) throws {
        var rng = SeededGenerator.logged("reopenKeepsExactPrefixOfWholeBatches(\(damage), \(segmentBytes))")
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: segmentBytes)
            for number in 0..<60 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            log.close()

            let expectation = try apply(damage, in: directory, model: model, using: &rng)
            let (recorder, logger) = RecordingLogHandler.logger()
            let reopened = try openLog(directory, segmentBytes: segmentBytes, logger: logger)

            var survivors = model
            survivors.keepFirst(expectation.survivingBatches)
            #expect(reopened.logEndOffset == survivors.endOffset)
            #expect(try readAllBatches(reopened, maxBytes: 1500) == survivors.batches)
            #expect(try readAllRecords(reopened) == survivors.records)
            for offset in stride(from: reopened.logStartOffset, to: reopened.logEndOffset, by: 3) {
                let slice = try #require(try reopened.read(from: offset, maxBytes: 1, endOffset: reopened.logEndOffset))
                #expect(slice.firstOffset <= offset && offset < slice.nextOffset)
            }

            if let path = expectation.reportPath {
                #expect(reopened.recoveryReports.count == 1)
                let report = try #require(reopened.recoveryReports.first)
                #expect(report.path == path)
                #expect(report.truncatedBytes == expectation.truncatedBytes)
                #expect(report.firstLostOffset == (expectation.truncatedBytes > 0 ? survivors.endOffset : nil))
                #expect(report.indexRebuilt == expectation.indexRebuilt)
                if let reasonContains = expectation.reasonContains { #expect(report.reason.contains(reasonContains), "\(report)") }
                #expect(recorder.messages(at: .warning).count == 1)
                if let setAside = report.setAsidePath {
                    let cut = try fileBytes(setAside)
                    #expect(cut.count == expectation.truncatedBytes)
                    #expect(cut.contains { $0 != 0 })
                }
            } else {
                #expect(reopened.recoveryReports.isEmpty)
            }

            // Appends continue at the next dense offset, and a clean reopen finds nothing to fix.
            for number in 0..<5 { try append(makeBatch(timestamp: 100 + Int64(number), using: &rng), to: reopened, model: &survivors) }
            reopened.close()
            let again = try openLog(directory, segmentBytes: segmentBytes)
            #expect(again.recoveryReports.isEmpty)
            #expect(again.logEndOffset == survivors.endOffset)
            #expect(try readAllBatches(again) == survivors.batches)
        }
    }

    private func apply(_ damage: Damage, in directory: String, model: LogModel, using rng: inout SeededGenerator) throws -> Expectation {
        let logs = try files(in: directory, suffix: ".log")
        let indexes = try files(in: directory, suffix: ".index")
        let activeLog = logs[logs.count - 1]
        let activeBytes = try fileBytes(activeLog)
        let activeBatchCount = try splitBatches(activeBytes).count
        let sealedBatchCount = model.batches.count - activeBatchCount
        /// Batches of the active segment that end at or before `position`, with their size.
        func batchesEnding(atOrBefore position: Int) throws -> (count: Int, bytes: Int) {
            var count = 0
            var bytes = 0
            for batch in try splitBatches(activeBytes) {
                guard bytes + batch.count <= position else { break }
                count += 1
                bytes += batch.count
            }
            return (count, bytes)
        }

        switch damage {
        case .truncateActiveLog:
            let cut = Int.random(in: 0..<activeBytes.count, using: &rng)
            try writeFile(activeLog, Array(activeBytes[..<cut]))
            let kept = try batchesEnding(atOrBefore: cut)
            return Expectation(survivingBatches: sealedBatchCount + kept.count, reportPath: kept.bytes == cut ? nil : activeLog,
                               truncatedBytes: cut - kept.bytes, reasonContains: "torn batch at byte \(kept.bytes)")
        case .garbleActiveLogTail:
            let start = Int.random(in: 0..<activeBytes.count, using: &rng)
            try writeFile(activeLog, Array(activeBytes[..<start]) + rng.bytes(activeBytes.count - start))
            let kept = try batchesEnding(atOrBefore: start)
            return Expectation(survivingBatches: sealedBatchCount + kept.count, reportPath: activeLog,
                               truncatedBytes: activeBytes.count - kept.bytes, reasonContains: "at byte \(kept.bytes)")
        case .appendGarbageToActiveLog:
            let garbage = Int.random(in: 1...500, using: &rng)
            try writeFile(activeLog, activeBytes + rng.bytes(garbage))
            return Expectation(survivingBatches: model.batches.count, reportPath: activeLog, truncatedBytes: garbage,
                               reasonContains: "at byte \(activeBytes.count)")
        case .appendZerosToActiveLog:
            let zeros = Int.random(in: 1...5000, using: &rng)
            try writeFile(activeLog, activeBytes + [UInt8](repeating: 0, count: zeros))
            return Expectation(survivingBatches: model.batches.count, reportPath: activeLog, truncatedBytes: zeros,
                               reasonContains: "zero-filled tail at byte \(activeBytes.count)")
        case .deleteActiveIndex:
            try FileManager.default.removeItem(atPath: indexes[indexes.count - 1])
            return Expectation(survivingBatches: model.batches.count, reportPath: activeLog, indexRebuilt: true,
                               reasonContains: "index rebuilt: missing")
        case .corruptActiveIndex:
            try corruptIndex(indexes[indexes.count - 1], using: &rng)
            return Expectation(survivingBatches: model.batches.count, reportPath: activeLog, indexRebuilt: true,
                               reasonContains: "index rebuilt")
        case .deleteSealedIndex, .corruptSealedIndex:
            let sealed = Int.random(in: 0..<(logs.count - 1), using: &rng)
            if damage == .deleteSealedIndex {
                try FileManager.default.removeItem(atPath: indexes[sealed])
            } else {
                try writeFile(indexes[sealed], rng.bytes(8 * Int.random(in: 1...20, using: &rng) + Int.random(in: 0...7, using: &rng)))
            }
            return Expectation(survivingBatches: model.batches.count, reportPath: logs[sealed], indexRebuilt: true,
                               reasonContains: "index rebuilt")
        }
    }

    /// Points one random entry at a byte that is not the start of its batch.
    private func corruptIndex(_ path: String, using rng: inout SeededGenerator) throws {
        var bytes = try fileBytes(path)
        let entry = Int.random(in: 0..<(bytes.count / OffsetIndex.entrySize), using: &rng)
        let position = bytes[(entry * 8 + 4)...].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        let moved = position + UInt32.random(in: 1...7, using: &rng)
        withUnsafeBytes(of: moved.littleEndian) { bytes.replaceSubrange((entry * 8 + 4)..<(entry * 8 + 8), with: $0) }
        try writeFile(path, bytes)
    }

    @Test func reportsSegmentWhoseNameDoesNotMatchItsFirstBatch() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 1024)
            for number in 0..<20 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            log.close()
            let logs = try files(in: directory, suffix: ".log")
            let activeBase = try #require(LogSegment.baseOffset(logFileName: URL(fileURLWithPath: logs[logs.count - 1]).lastPathComponent))
            let wrongBase = activeBase + 5
            let renamed = "\(directory)/\(LogSegment.fileName(baseOffset: wrongBase, suffix: ".log"))"
            try FileManager.default.moveItem(atPath: logs[logs.count - 1], toPath: renamed)
            let activeBytes = try fileBytes(renamed)

            let reopened = try openLog(directory, segmentBytes: 1024)
            let reports = reopened.recoveryReports
            #expect(reports.count == 2)
            #expect(reports.contains { $0.path == renamed && $0.reason.contains("offsets \(activeBase)..<\(wrongBase) are missing") })
            let cut = try #require(reports.first { $0.path == renamed && $0.truncatedBytes > 0 })
            #expect(cut.reason.contains("first batch has base offset \(activeBase), but the file name says \(wrongBase)"))
            #expect(cut.truncatedBytes == activeBytes.count)
            #expect(try fileBytes(try #require(cut.setAsidePath)) == activeBytes, "cut bytes are set aside, not lost")
            #expect(reopened.logEndOffset == wrongBase)
            #expect(try readAllBatches(reopened) == model.batches.filter { lastOffset(of: $0) < activeBase })

            var rest = LogModel(startOffset: wrongBase)
            try append(makeBatch(timestamp: 0, using: &rng), to: reopened, model: &rest)
        }
    }

    @Test func neverOverwritesBytesSetAsideEarlier() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 1 << 20)
            for number in 0..<3 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            log.close()
            let path = try files(in: directory, suffix: ".log")[0]
            let clean = try fileBytes(path)

            var setAside: [String: [UInt8]] = [:]
            for _ in 0..<2 {
                let garbage = rng.bytes(100)
                try writeFile(path, clean + garbage)
                let reopened = try openLog(directory, segmentBytes: 1 << 20)
                let report = try #require(reopened.recoveryReports.first)
                setAside[try #require(report.setAsidePath)] = garbage
                reopened.close()
            }
            #expect(setAside.keys.sorted() == ["\(path).\(clean.count).1.corrupt", "\(path).\(clean.count).corrupt"])
            for (copy, garbage) in setAside { #expect(try fileBytes(copy) == garbage) }
        }
    }

    @Test func cutsTornSealedSegmentAndReportsTheGap() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 2048)
            // Batches of at most about 760 bytes: at least two per segment.
            for number in 0..<40 {
                try append(makeBatch(timestamp: Int64(number), maxValueBytes: 100, using: &rng), to: log, model: &model)
            }
            log.close()
            let logs = try files(in: directory, suffix: ".log")
            try #require(logs.count >= 3)
            let sealed = try fileBytes(logs[0])
            let batches = try splitBatches(sealed)
            try #require(batches.count >= 2)
            try writeFile(logs[0], Array(sealed.dropLast(3)))

            let reopened = try openLog(directory, segmentBytes: 2048)
            let cut = try #require(reopened.recoveryReports.first { $0.path == logs[0] })
            #expect(cut.truncatedBytes == batches[batches.count - 1].count - 3)
            #expect(reopened.recoveryReports.contains { $0.path == logs[1] && $0.reason.contains("are missing") })
            let lost = lastOffset(of: batches[batches.count - 1])
            #expect(try readAllBatches(reopened) == model.batches.filter { lastOffset(of: $0) != lost })
            #expect(reopened.logEndOffset == model.endOffset)
        }
    }
}
