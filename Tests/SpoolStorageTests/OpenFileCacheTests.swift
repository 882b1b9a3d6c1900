@_spi(Testing) import SpoolTesting
import Foundation
@_spi(Testing) @testable import SpoolStorage
import SpoolWire
import Testing

@Suite struct OpenFileCacheTests {
    /// Fifty logs of several segments each share eight descriptors: every append, read, sync and
    /// reopen works, and the cache never holds more than its capacity.
    @Test func fewDescriptorsServeManyLogs() throws {
        var rng = SeededGenerator.logged("fewDescriptorsServeManyLogs")
        try withTemporaryDirectory { directory in
            let cache = OpenFileCache(capacity: 8)
            let configuration = LogConfiguration(segmentBytes: 1024, indexIntervalBytes: 256)
            let paths = (0..<50).map { "\(directory)/t/\($0)" }
            var logs = try paths.map { try PartitionLog(directory: $0, configuration: configuration, logger: .quiet, openFiles: cache) }
            var models = [LogModel](repeating: LogModel(), count: logs.count)
            for number in 0..<600 {
                let which = Int.random(in: 0..<logs.count, using: &rng)
                try append(makeBatch(timestamp: Int64(number), using: &rng), to: logs[which], model: &models[which])
                if number % 7 == 0, let work = logs[which].takeSyncWork() { try work.files.forEach { try $0.sync() } }
                #expect(cache.statistics.open <= 8)
            }
            for (log, model) in zip(logs, models) {
                #expect(log.segmentCount > 1 || model.byteCount <= 1024)
                try expectReadsBack(log, model)
            }
            #expect(cache.statistics.evictions > 0)

            for log in logs { try log.takeSyncWork()?.files.forEach { try $0.sync() } }
            for log in logs { try log.closeCleanly() }
            let reopened = OpenFileCache(capacity: 8)
            logs = try paths.map {
                try PartitionLog(directory: $0, configuration: configuration, mode: .afterCleanShutdown, logger: .quiet, openFiles: reopened)
            }
            for (log, model) in zip(logs, models) {
                #expect(log.recoveryReports.isEmpty)
                try expectReadsBack(log, model)
            }
            #expect(reopened.statistics.open <= 8)
        }
    }

    /// A clean open of segments whose index files are whole writes nothing and opens no index
    /// file: only their `.log` files, for the cheap checks.
    @Test func aCleanOpenWritesNothing() throws {
        var rng = SeededGenerator.logged("aCleanOpenWritesNothing")
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 1024)
            for number in 0..<60 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            #expect(log.segmentCount > 3)
            try log.takeSyncWork()?.files.forEach { try $0.sync() }
            try log.closeCleanly()

            let injector = FaultInjector()
            let cache = OpenFileCache()
            let reopened = try PartitionLog(directory: directory, configuration: LogConfiguration(segmentBytes: 1024, indexIntervalBytes: 256),
                                            mode: .afterCleanShutdown, logger: .quiet, io: injector.io, openFiles: cache)
            #expect(injector.writeCount == 0, "nothing was written")
            // The directory, every .log, and the active segment's two index files.
            #expect(cache.statistics.opens <= 1 + reopened.segmentCount + 2)
            try expectReadsBack(reopened, model)
        }
    }

    /// Under `fsync: always` the descriptor a write went through stays open, after the cache let
    /// it go, until the sync work covering the write is dropped; under `never` nothing is kept.
    @Test(arguments: [FsyncPolicy.always, .never])
    func aWrittenFileStaysOpenUntilItsSyncRan(policy: FsyncPolicy) throws {
        var rng = SeededGenerator.logged("aWrittenFileStaysOpenUntilItsSyncRan(\(policy))")
        try withTemporaryDirectory { directory in
            let cache = OpenFileCache(capacity: 1)
            let configuration = LogConfiguration(fsync: policy)
            let first = try PartitionLog(directory: "\(directory)/a", configuration: configuration, logger: .quiet, openFiles: cache)
            let second = try PartitionLog(directory: "\(directory)/b", configuration: configuration, logger: .quiet, openFiles: cache)
            _ = first.takeSyncWork()
            var model = LogModel()
            try append(makeBatch(timestamp: 1, using: &rng), to: first, model: &model)
            var work = first.takeSyncWork()
            weak let written = work?.writtenDescriptors.first
            var other = LogModel()
            try append(makeBatch(timestamp: 2, using: &rng), to: second, model: &other)  // takes the cache's only place
            switch policy {
            case .always:
                #expect(written != nil, "the descriptor the write went through is still open")
                try work?.files.forEach { try $0.sync() }  // through that descriptor, which the cache takes back
                work = nil
                try append(makeBatch(timestamp: 3, using: &rng), to: second, model: &other)
                #expect(written == nil, "closed once the sync work is gone and the cache let it go")
            default:
                #expect(work?.writtenDescriptors.isEmpty == true)
            }
            try expectReadsBack(first, model)
        }
    }

    /// A file used between every two new ones is never closed: CLOCK keeps what is used again.
    @Test func aFileUsedAgainAndAgainStaysOpen() throws {
        try withTemporaryDirectory { directory in
            let cache = OpenFileCache(capacity: 4)
            let hot = try CachedFile(opening: "\(directory)/hot", flags: O_RDWR | O_CREAT, io: .system, cache: cache)
            var cold: [CachedFile] = []
            for number in 0..<100 {
                cold.append(try CachedFile(opening: "\(directory)/cold-\(number)", flags: O_RDWR | O_CREAT, io: .system, cache: cache))
                _ = try hot.size()
            }
            #expect(cache.statistics.opens == 101, "hot was opened once, each cold file once")
            #expect(cache.statistics.open == 4)
            // A cold file evicted long ago opens again on use, and reads what was written.
            try withBytes(of: Array("again".utf8)) { (bytes) throws(StorageError) in try cold[0].write(at: 0, bytes) }
            #expect(try cold[0].size() == 5)
            #expect(cache.statistics.opens == 102)
            // A file that goes away releases its place.
            cold.removeAll()
            #expect(cache.statistics.open == 1)
        }
    }

    /// A file renamed away (retention, a cleaned copy swapped in) needs no sync once closed.
    @Test func syncingAFileWhoseNameIsGoneSucceeds() throws {
        try withTemporaryDirectory { directory in
            let cache = OpenFileCache(capacity: 1)
            let file = try CachedFile(opening: "\(directory)/segment", flags: O_RDWR | O_CREAT, io: .system, cache: cache)
            try Syscall.rename("\(directory)/segment", to: "\(directory)/segment.deleted")
            _ = try CachedFile(opening: "\(directory)/other", flags: O_RDWR | O_CREAT, io: .system, cache: cache)
            try file.sync()
            #expect(throws: StorageError.self) { try file.size() }
        }
    }

    private func expectReadsBack(_ log: PartitionLog, _ model: LogModel) throws {
        var offset = log.logStartOffset
        var batches: [[UInt8]] = []
        while let slice = try log.read(from: offset, maxBytes: 1 << 20, endOffset: .max) {
            var bytes = [UInt8](repeating: 0, count: slice.length)
            _ = try bytes.withUnsafeMutableBytes { try slice.read(into: $0) }
            batches += try splitBatches(bytes)
            offset = slice.nextOffset
        }
        #expect(batches == model.batches)
    }
}
