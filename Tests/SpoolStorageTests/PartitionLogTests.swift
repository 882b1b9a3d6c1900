import SpoolTesting
import Foundation
@_spi(Testing) @testable import SpoolStorage
import SpoolWire
import Testing

@Suite struct PartitionLogTests {
    /// Tiny (one or two batches per segment, some batches larger than a segment), small, medium,
    /// and the default (never rolls here).
    static let segmentSizes = [1024, 3000, 64 << 10, 1 << 30]

    @Test(arguments: segmentSizes)
    func appendsAndReadsAcrossSegmentRolls(segmentBytes: Int) throws {
        var rng = SeededGenerator.logged("appendsAndReadsAcrossSegmentRolls(\(segmentBytes))")
        try withTemporaryDirectory { directory in
            let log = try openLog("\(directory)/orders/0", segmentBytes: segmentBytes)
            var model = LogModel()
            for number in 0..<150 {
                let batch = makeBatch(timestamp: 1_000 + Int64(number), using: &rng)
                let original = batch
                try append(batch, to: log, model: &model)
                #expect(batch == original, "append must not change the caller's buffer")
            }
            #expect(log.logStartOffset == 0)
            #expect(log.logEndOffset == model.endOffset)
            #expect(log.sizeInBytes == model.byteCount)

            // Segments: rolled when full, never larger than segmentBytes unless holding one batch.
            let logFiles = try files(in: "\(directory)/orders/0", suffix: ".log")
            #expect((logFiles.count > 1) == (model.byteCount > segmentBytes))
            for path in logFiles {
                let bytes = try fileBytes(path)
                let batchCount = try splitBatches(bytes).count
                #expect(bytes.count <= segmentBytes || batchCount == 1)
            }

            // A fetch at every offset starts with the batch holding it and returns whole batches
            // exactly as stored, within maxBytes unless one batch is larger.
            for offset in 0..<model.endOffset {
                let maxBytes = Int.random(in: 1...4096, using: &rng)
                let slice = try #require(try log.read(from: offset, maxBytes: maxBytes, endOffset: log.logEndOffset))
                let batches = try splitBatches(try slice.bytes())
                let first = try #require(model.baseOffsets.lastIndex { $0 <= offset })
                #expect(slice.firstOffset == model.baseOffsets[first])
                #expect(batches == Array(model.batches[first..<(first + batches.count)]))
                #expect(slice.length <= maxBytes || batches.count == 1)
                #expect(slice.nextOffset == lastOffset(of: batches[batches.count - 1]) + 1)
            }
            #expect(try readAllBatches(log, maxBytes: 700) == model.batches)
            #expect(try readAllRecords(log) == model.records)

            // A visible end below the log end stops the fetches there.
            let visibleEnd = model.baseOffsets[model.baseOffsets.count / 2]
            var offset: Int64 = 0
            while let slice = try log.read(from: offset, maxBytes: 2000, endOffset: visibleEnd) {
                #expect(try splitBatches(try slice.bytes()).allSatisfy { lastOffset(of: $0) < visibleEnd })
                offset = slice.nextOffset
            }
            #expect(offset == visibleEnd)

            #expect(try log.read(from: log.logEndOffset, maxBytes: 100, endOffset: log.logEndOffset) == nil)
            for outside in [-1, log.logEndOffset + 1] {
                let error = #expect(throws: StorageError.self) { try log.read(from: outside, maxBytes: 100, endOffset: log.logEndOffset) }
                #expect(error?.code == .offsetOutOfRange)
            }
            log.close()
        }
    }

    @Test(arguments: segmentSizes)
    func reopensWithSameEndAndIdenticalBytes(segmentBytes: Int) throws {
        var rng = SeededGenerator.logged("reopensWithSameEndAndIdenticalBytes(\(segmentBytes))")
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: segmentBytes)
            for number in 0..<80 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            log.close()
            let before = try snapshot(of: directory)

            let reopened = try openLog(directory, segmentBytes: segmentBytes)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(reopened.logEndOffset == model.endOffset)
            #expect(reopened.sizeInBytes == model.byteCount)
            #expect(try snapshot(of: directory) == before)
            #expect(try readAllBatches(reopened) == model.batches)

            try append(makeBatch(timestamp: 99, using: &rng), to: reopened, model: &model)
            #expect(try readAllBatches(reopened) == model.batches)
        }
    }

    @Test func findsOffsetsByTimestamp() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            let log = try openLog(directory, segmentBytes: 2048)
            var model = LogModel()
            for number in 0..<40 { try append(makeBatch(timestamp: Int64(number) * 100, using: &rng), to: log, model: &model) }
            for (number, baseOffset) in model.baseOffsets.enumerated() {
                #expect(try log.offset(atOrAfterTimestamp: Int64(number) * 100) == baseOffset)
            }
            #expect(try log.offset(atOrAfterTimestamp: -5) == 0)
            #expect(try log.offset(atOrAfterTimestamp: 1_000_000) == log.logEndOffset)
        }
    }

    @Test func readsAtLeastOneWholeBatchBeyondMaxBytes() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            let log = try openLog(directory, segmentBytes: 1 << 20)
            var model = LogModel()
            for number in 0..<5 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            let slice = try #require(try log.read(from: 0, maxBytes: 0, endOffset: log.logEndOffset))
            #expect(try slice.bytes() == model.batches[0])
        }
    }

    @Test func keepsSlicesReadableAfterRollAndClose() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            let log = try openLog(directory, segmentBytes: 1024)
            var model = LogModel()
            try append(makeBatch(timestamp: 0, using: &rng), to: log, model: &model)
            let slice = try #require(try log.read(from: 0, maxBytes: 1 << 20, endOffset: log.logEndOffset))
            for number in 1..<10 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            log.close()
            #expect(try slice.bytes() == model.batches[0])
            let error = #expect(throws: StorageError.self) { try model.batches[0].withUnsafeBytes { try log.append($0) } }
            #expect(error?.code == .closed)
        }
    }

    @Test func rejectsBuffersThatAreNotOneBatch() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            let log = try openLog(directory, segmentBytes: 1 << 20)
            let batch = makeBatch(timestamp: 0, using: &rng)
            for bad in [Array(batch.dropLast()), batch + [0], [UInt8](repeating: 0, count: 10)] {
                let error = #expect(throws: StorageError.self) { try bad.withUnsafeBytes { try log.append($0) } }
                #expect(error?.code == .invalidArgument)
            }
            #expect(log.logEndOffset == 0)
            #expect(log.sizeInBytes == 0)
        }
    }

    @Test func syncWorkCoversRolledSegmentsAndTheDirectory() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            let log = try openLog(directory, segmentBytes: 1024)
            let created = try #require(log.takeSyncWork())
            #expect(created.files.map(\.path) == [directory], "a new log's first segment needs its directory entry synced")
            #expect(log.takeSyncWork()?.endOffset == nil)

            var model = LogModel()
            try append(makeBatch(timestamp: 0, using: &rng), to: log, model: &model)
            let work = try #require(log.takeSyncWork())
            #expect(work.endOffset == log.logEndOffset)
            #expect(work.files.map(\.path) == (try files(in: directory, suffix: ".log")))

            while try files(in: directory, suffix: ".log").count < 3 {
                try append(makeBatch(timestamp: 0, using: &rng), to: log, model: &model)
            }
            let rolled = try #require(log.takeSyncWork())
            let paths = Set(rolled.files.map(\.path))
            let logs = try files(in: directory, suffix: ".log")
            let indexes = try files(in: directory, suffix: ".index")
            #expect(paths.isSuperset(of: [logs[1], indexes[1], logs[2], directory]))
            #expect(rolled.files.last?.path == directory)
            #expect(rolled.endOffset == log.logEndOffset)
        }
    }
}
