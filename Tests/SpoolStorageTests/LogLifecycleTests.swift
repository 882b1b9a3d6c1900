import Foundation
import Logging
import SpoolTesting
@_spi(Testing) @testable import SpoolStorage
import SpoolWire
import Testing

/// Time lookups, segment age, retention, cutting the log back, clean shutdown: what a log does
/// over its life besides appends and reads.
@Suite struct LogLifecycleTests {
    /// A batch whose records carry the given timestamps, in that order (they need not ascend).
    private func batch(timestamps: [Int64], using rng: inout SeededGenerator) -> [UInt8] {
        var builder = RecordBatchBuilder()
        for timestamp in timestamps { builder.append(timestamp: timestamp, key: nil, value: rng.bytes(Int.random(in: 0...200, using: &rng))) }
        return builder.finish()
    }

    /// The offset of the first record, in offset order, created at or after `timestamp`.
    private func expectedOffset(atOrAfter timestamp: Int64, in model: LogModel) -> Int64 {
        model.records.first { $0.timestamp >= timestamp }?.offset ?? model.endOffset
    }

    /// Lookups by time answer exactly what a scan of every record would, for timestamps that
    /// jump back and forth across batches, records and segments, before and after a reopen in
    /// either mode (the time index is rebuilt by a crash recovery and trusted after a clean one).
    @Test(arguments: [PartitionLog.OpenMode.afterCrash, .afterCleanShutdown])
    func timeLookupsMatchAScanOfEveryRecord(reopenMode: PartitionLog.OpenMode) throws {
        var rng = SeededGenerator.logged("timeLookupsMatchAScanOfEveryRecord(\(reopenMode))")
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 3000, indexIntervalBytes: 400)
            var clock: Int64 = 1_000_000
            for _ in 0..<150 {
                // Mostly ascending, with producers whose clocks lag.
                clock += Int64.random(in: -300...1000, using: &rng)
                let timestamps = (0..<Int.random(in: 1...4, using: &rng)).map { _ in clock + Int64.random(in: -500...500, using: &rng) }
                try append(batch(timestamps: timestamps, using: &rng), to: log, model: &model)
            }
            let probes = model.records.map(\.timestamp) + (0..<200).map { _ in Int64.random(in: 990_000...(clock + 2000), using: &rng) }
            for probe in probes {
                #expect(try log.offset(atOrAfterTimestamp: probe) == expectedOffset(atOrAfter: probe, in: model), "t=\(probe)")
            }
            if reopenMode == .afterCleanShutdown { try log.closeCleanly() } else { log.close() }

            let reopened = try PartitionLog(directory: directory, configuration: LogConfiguration(segmentBytes: 3000, indexIntervalBytes: 400),
                                            mode: reopenMode, logger: .quiet)
            #expect(reopened.recoveryReports.isEmpty)
            for probe in probes.shuffled(using: &rng).prefix(100) {
                #expect(try reopened.offset(atOrAfterTimestamp: probe) == expectedOffset(atOrAfter: probe, in: model), "t=\(probe)")
            }
        }
    }

    /// A missing or corrupt `.timeindex` is rebuilt from the log with one report, and lookups stay exact.
    @Test(arguments: [false, true])
    func rebuildsDamagedTimeIndex(sealed: Bool) throws {
        var rng = SeededGenerator.logged("rebuildsDamagedTimeIndex(sealed: \(sealed))")
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 2048)
            for number in 0..<40 { try append(makeBatch(timestamp: Int64(number) * 100, using: &rng), to: log, model: &model) }
            log.close()
            let timeIndexes = try files(in: directory, suffix: ".timeindex")
            let logs = try files(in: directory, suffix: ".log")
            try #require(timeIndexes.count >= 3)
            // A sealed segment with a second time-index entry to garble (random batch sizes may give one a single entry).
            let garblable = try timeIndexes.indices.dropLast().filter { try fileBytes(timeIndexes[$0]).count >= 2 * TimeIndex.entrySize }
            let damaged = sealed ? try #require(garblable.randomElement(using: &rng)) : timeIndexes.count - 1
            if sealed {
                var bytes = try fileBytes(timeIndexes[damaged])
                bytes[TimeIndex.entrySize + 8] ^= 0xff  // second entry's relative offset
                try writeFile(timeIndexes[damaged], bytes)
            } else {
                try FileManager.default.removeItem(atPath: timeIndexes[damaged])
            }

            let (recorder, logger) = RecordingLogHandler.logger()
            let reopened = try openLog(directory, segmentBytes: 2048, logger: logger)
            #expect(reopened.recoveryReports.count == 1)
            let report = try #require(reopened.recoveryReports.first)
            #expect(report.path == logs[damaged])
            #expect(report.indexRebuilt && report.truncatedBytes == 0)
            #expect(report.reason.contains("time index rebuilt"), "\(report)")
            #expect(recorder.messages(at: .warning).count == 1)
            for (number, baseOffset) in model.baseOffsets.enumerated() {
                #expect(try reopened.offset(atOrAfterTimestamp: Int64(number) * 100) == baseOffset)
            }
            reopened.close()
            #expect(try openLog(directory, segmentBytes: 2048).recoveryReports.isEmpty, "the rebuilt index was written")
        }
    }

    /// After a crash, a corrupt batch in the middle of a sealed segment is found: the segment stays
    /// readable up to it, the lost offset range is reported, the cut bytes are saved aside, and
    /// the later segments are untouched.
    @Test func cutsSealedSegmentAtACorruptMiddleBatch() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 4096)
            for number in 0..<60 { try append(makeBatch(timestamp: Int64(number), maxValueBytes: 150, using: &rng), to: log, model: &model) }
            log.close()
            let logs = try files(in: directory, suffix: ".log")
            try #require(logs.count >= 3)
            let sealedBytes = try fileBytes(logs[0])
            let batches = try splitBatches(sealedBytes)
            try #require(batches.count >= 4)
            // Flip a byte inside the payload of a batch that is neither the first nor the last.
            let victim = Int.random(in: 1..<(batches.count - 1), using: &rng)
            let start = batches[..<victim].reduce(0) { $0 + $1.count }
            var damaged = sealedBytes
            damaged[start + RecordBatch.headerSize + Int.random(in: 0..<(batches[victim].count - RecordBatch.headerSize), using: &rng)] ^= 0x5a
            try writeFile(logs[0], damaged)

            let reopened = try openLog(directory, segmentBytes: 4096)
            let firstLost = try batches[victim].withUnsafeBytes { try RecordBatch.readHeader($0) }.baseOffset
            let nextSegmentStart = try #require(LogSegment.baseOffset(logFileName: (logs[1] as NSString).lastPathComponent))
            let cut = try #require(reopened.recoveryReports.first { $0.path == logs[0] })
            #expect(cut.reason.contains("corrupt batch at byte \(start)"), "\(cut)")
            #expect(cut.firstLostOffset == firstLost)
            #expect(cut.truncatedBytes == sealedBytes.count - start)
            #expect(try fileBytes(try #require(cut.setAsidePath)) == Array(damaged[start...]))
            #expect(reopened.recoveryReports.contains { $0.path == logs[1] && $0.reason.contains("offsets \(firstLost)..<\(nextSegmentStart) are missing") })
            let lost = firstLost..<nextSegmentStart
            #expect(try readAllBatches(reopened) == model.batches.filter { !lost.contains(lastOffset(of: $0)) })
            #expect(reopened.logEndOffset == model.endOffset)
        }
    }

    /// A segment rolls at the first append once it has taken appends for `segmentMilliseconds`,
    /// and not before; an empty active segment never rolls by age.
    @Test func rollsBySegmentAge() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            var model = LogModel()
            var configuration = LogConfiguration(segmentBytes: 1 << 20, segmentMilliseconds: 1000)
            configuration.indexIntervalBytes = 256
            let log = try PartitionLog(directory: directory, configuration: configuration, logger: .quiet)
            let start = ContinuousClock.now
            func appendAt(_ milliseconds: Int) throws {
                let bytes = makeBatch(timestamp: 0, using: &rng)
                let result = try bytes.withUnsafeBytes { try log.append($0, at: start + .milliseconds(milliseconds)) }
                model.record(bytes, result)
            }
            try appendAt(0)
            try appendAt(999)
            #expect(try files(in: directory, suffix: ".log").count == 1)
            try appendAt(1000)
            #expect(try files(in: directory, suffix: ".log").count == 2, "rolled at the segment's age limit")
            try appendAt(1999)
            #expect(try files(in: directory, suffix: ".log").count == 2, "the new segment's age counts from its first append")
            try appendAt(2000)
            #expect(try files(in: directory, suffix: ".log").count == 3)
            #expect(try readAllBatches(log) == model.batches)
        }
    }

    /// Retention deletes whole sealed segments from the front, by age of their newest record and
    /// by total size, never the active one; reads below the new start are out of range; the
    /// files disappear; a reopen agrees.
    @Test func retentionDeletesWholeSealedSegmentsFromTheFront() async throws {
        var rng = SeededGenerator.logged()
        try await withTemporaryDirectory { directory in
            var model = LogModel()
            var configuration = LogConfiguration(segmentBytes: 2048, indexIntervalBytes: 256)
            configuration.retentionMilliseconds = nil
            let log = try PartitionLog(directory: directory, configuration: configuration, logger: .quiet)
            // Record timestamps 0, 100, 200, …: segment k holds a contiguous range of them.
            for number in 0..<60 { try append(makeBatch(timestamp: Int64(number) * 100, maxValueBytes: 150, using: &rng), to: log, model: &model) }
            let segmentStarts = try files(in: directory, suffix: ".log").map { try #require(LogSegment.baseOffset(logFileName: ($0 as NSString).lastPathComponent)) }
            try #require(segmentStarts.count >= 4)
            #expect(try log.applyRetention(nowMilliseconds: .max) == nil, "no limits, nothing deleted")

            // By age: everything older than the newest record of segment 1 goes: segments 0 and 1.
            let newestOfSegment1 = model.records.filter { $0.offset < segmentStarts[2] }.map(\.timestamp).max()!
            log.configuration.retentionMilliseconds = 1000
            let byAge = try #require(try log.applyRetention(nowMilliseconds: newestOfSegment1 + 1000 + 1))
            #expect(byAge.deletedSegments == 2)
            #expect(byAge.logStartOffset == segmentStarts[2])
            #expect(log.logStartOffset == segmentStarts[2])
            #expect(throws: StorageError.self) { try log.read(from: segmentStarts[2] - 1, maxBytes: 1, endOffset: .max) }
            var expected = model.batches.filter { lastOffset(of: $0) >= segmentStarts[2] }
            #expect(try readAllBatches(log) == expected)

            // Everything expired: every sealed segment goes, the active one stays.
            let byAll = try #require(try log.applyRetention(nowMilliseconds: .max))
            #expect(byAll.logStartOffset == segmentStarts.last)
            expected = model.batches.filter { lastOffset(of: $0) >= segmentStarts.last! }
            #expect(try readAllBatches(log) == expected)
            #expect(try log.applyRetention(nowMilliseconds: .max) == nil)
            #expect(try files(in: directory, suffix: ".log").count == 1)
            #expect(await eventually { (try? files(in: directory, suffix: ".deleted").isEmpty) == true })

            // The reopened log starts where retention left it, with nothing to repair.
            log.close()
            let reopened = try openLog(directory, segmentBytes: 2048)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(reopened.logStartOffset == segmentStarts.last)
            #expect(try readAllBatches(reopened) == expected)
        }
    }

    /// `retention.bytes` keeps at least that many bytes: it deletes the oldest sealed segments
    /// only while the rest still holds the limit.
    @Test func retentionBytesKeepsAtLeastTheLimit() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 2048)
            for number in 0..<80 { try append(makeBatch(timestamp: Int64(number), maxValueBytes: 150, using: &rng), to: log, model: &model) }
            let sizes = try files(in: directory, suffix: ".log").map { try fileBytes($0).count }
            let limit = Int64(Int.random(in: 1...(sizes.reduce(0, +) - 1), using: &rng))
            log.configuration.retentionMilliseconds = nil
            log.configuration.retentionBytes = limit
            _ = try log.applyRetention(nowMilliseconds: 0)
            // The expected count of deleted segments, computed from the file sizes.
            var deleted = 0
            var remaining = sizes.reduce(0, +)
            while deleted < sizes.count - 1, Int64(remaining - sizes[deleted]) >= limit {
                remaining -= sizes[deleted]
                deleted += 1
            }
            #expect(log.sizeInBytes == remaining)
            #expect(Int64(log.sizeInBytes) >= limit)
            #expect(try files(in: directory, suffix: ".log").count == sizes.count - deleted)
            #expect(try readAllBatches(log) == model.batches.filter { lastOffset(of: $0) >= log.logStartOffset })
        }
    }

    /// Cutting the log back to a batch boundary (what the broker does after a failed sync) drops
    /// exactly the later batches, from the files too, and appends continue densely from there.
    @Test func truncateDropsEverythingFromABatchBoundary() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 2048)
            for number in 0..<50 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            let kept = Int.random(in: 0..<model.batches.count, using: &rng)
            let offset = model.baseOffsets[kept]
            // Offsets outside the log or inside a batch are refused and change nothing.
            let inside = zip(model.baseOffsets, model.batches).first { lastOffset(of: $0.1) > $0.0 }.map { $0.0 + 1 }
            for bad in [-1, model.endOffset + 1] + (inside.map { [$0] } ?? []) {
                #expect(throws: StorageError.self) { try log.truncate(to: bad) }
                #expect(log.logEndOffset == model.endOffset && log.sizeInBytes == model.byteCount)
            }
            try log.truncate(to: offset)
            model.keepFirst(kept)
            #expect(log.logEndOffset == offset)
            #expect(try readAllBatches(log) == model.batches)
            #expect(log.sizeInBytes == model.byteCount)
            for number in 0..<10 { try append(makeBatch(timestamp: 100 + Int64(number), using: &rng), to: log, model: &model) }
            #expect(try readAllBatches(log) == model.batches)
            log.close()

            let reopened = try openLog(directory, segmentBytes: 2048)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(try readAllBatches(reopened) == model.batches)
            #expect(reopened.logEndOffset == model.endOffset)
        }
    }

    /// After ``PartitionLog/closeCleanly()`` a log opened with cheap checks holds exactly what a
    /// full verification finds, and appends continue.
    @Test func cleanCloseReopensWithoutAScan() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 4096)
            for number in 0..<70 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            try log.closeCleanly()
            let configuration = LogConfiguration(segmentBytes: 4096, indexIntervalBytes: 256)
            let clean = try PartitionLog(directory: directory, configuration: configuration, mode: .afterCleanShutdown, logger: .quiet)
            #expect(clean.recoveryReports.isEmpty)
            #expect(clean.logEndOffset == model.endOffset)
            #expect(try readAllBatches(clean) == model.batches)
            for number in 0..<5 { try append(makeBatch(timestamp: 100 + Int64(number), using: &rng), to: clean, model: &model) }
            clean.close()
            let verified = try PartitionLog(directory: directory, configuration: configuration, mode: .afterCrash, logger: .quiet)
            #expect(verified.recoveryReports.isEmpty)
            #expect(try readAllBatches(verified) == model.batches)
        }
    }
}

/// The clean-shutdown marker of the data directory.
@Suite struct CleanShutdownMarkerTests {
    /// The marker is found and consumed by the next open only; an open that is not followed by
    /// ``DataDirectory/markCleanShutdown()`` (a crash) leaves none.
    @Test func markerIsConsumedByTheNextOpenOnly() throws {
        try withTemporaryDirectory { directory in
            let first = try DataDirectory(path: directory, logger: .quiet)
            #expect(!first.openedAfterCleanShutdown)
            try first.markCleanShutdown()
            first.close()
            let second = try DataDirectory(path: directory, logger: .quiet)
            #expect(second.openedAfterCleanShutdown)
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/\(DataDirectory.cleanShutdownFileName)"))
            second.close()  // no marker: as after a crash
            let third = try DataDirectory(path: directory, logger: .quiet)
            #expect(!third.openedAfterCleanShutdown)
        }
    }
}
