// Fuzz targets of storage recovery (`segment-recovery`, `offset-store`, `key-index`) and the tests that replay
// their committed corpus.
//
// This file is compiled twice. In SpoolStorageTests it is a test file: the suite at the bottom
// replays every file of `Fuzz/Corpus/<target>/` through the targets and runs a short seeded
// mutation loop. Through a symlink it is also a source file of the libFuzzer executable in
// `Fuzz/` (see `scripts/fuzz.sh`), which defines `SPOOL_FUZZ` and so leaves the tests out.
// The targets in between are the same code in both builds, and use only public API.
//
// A target writes its input as files into a fresh directory (under `SPOOL_FUZZ_TMPDIR`, else
// /dev/shm when writable, else the temporary directory), opens them, and throws when an
// invariant breaks; the libFuzzer executable turns that into a trap.

import Glibc
import Logging
import SpoolStorage
import SpoolWire
#if !SPOOL_FUZZ
import Foundation
import SpoolTesting
import Testing
#endif

/// The fuzz targets of SpoolStorage, by the names the corpus folders and `scripts/fuzz.sh` use.
enum StorageFuzzTargets {
    static let all: [(name: String, run: @Sendable (UnsafeRawBufferPointer) throws -> Void)] = [
        ("segment-recovery", segmentRecovery),
        ("offset-store", offsetStore),
        ("key-index", keyIndex),
    ]

    static let logger = Logger(label: "spool.fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    // MARK: key-index

    /// One file of the key index of a known log (``KeyIndexLog``), as input:
    /// ```
    /// u8     which file: even = the first run file, odd = the retired table
    /// rest   the file's bytes
    /// ```
    /// The log is written and closed cleanly, the chosen file replaced by the input, and the log
    /// opened after a "clean shutdown", then after a crash: each open must succeed, and every
    /// key's last offset and every key's records must be what the log holds (a damaged run file
    /// is noticed and rebuilt from the log). A damaged retired table is set aside: then the keys
    /// whose records retention deleted may have no last offset, never a wrong one.
    static func keyIndex(_ data: UnsafeRawBufferPointer) throws {
        guard let selector = data.first else { return }
        let scratch = try ScratchDirectory()
        let directory = "\(scratch.path)/keys"
        let log = try KeyIndexLog(directory: directory)
        let replaced = selector % 2 == 0 ? log.firstRunFile : "retired.keys"
        try writeFile("\(directory)/\(replaced)", Array(data[1...]))
        for mode in [PartitionLog.OpenMode.afterCleanShutdown, .afterCrash] {
            let opened = try openLog(directory, KeyIndexLog.configuration, mode)
            try log.check(opened, retiredMayBeGone: selector % 2 == 1, "\(mode) with \(replaced) replaced")
            opened.close()
        }
    }

    /// A log of 40 small batches over 8 keys (and keyless records), segments of 600 bytes and 3
    /// keys in memory, so that the key index writes run files; retention deleted the older half,
    /// so the retired table holds keys too; closed cleanly.
    struct KeyIndexLog {
        static let configuration = LogConfiguration(segmentBytes: 600, segmentMilliseconds: nil, indexIntervalBytes: 64, fsync: .never,
                                                    retentionMilliseconds: nil, keyIndexKeysInMemory: 3)
        static let keys: [[UInt8]] = (0..<8).map { Array("k\($0)".utf8) } + [Array("never".utf8)]
        /// Every record appended, with its key.
        var records: [(offset: Int64, key: [UInt8]?)] = []
        var logStartOffset: Int64 = 0
        var firstRunFile = ""

        init(directory: String) throws(Failure) {
            try makeDirectory(directory)
            let log = try openLog(directory, Self.configuration, .afterCrash)
            for number in 0..<40 {
                let keys: [[UInt8]?] = [Self.keys[number % 8], nil, Self.keys[(number * 3 + 1) % 8]]
                var builder = RecordBatchBuilder()
                for key in keys { builder.append(timestamp: Int64(number), key: key, value: Array("v\(number)".utf8)) }
                let batch = builder.finish()
                do {
                    let result = try batch.withUnsafeBytes { try log.append($0) }
                    for (delta, key) in keys.enumerated() { records.append((result.baseOffset + Int64(delta), key)) }
                } catch {
                    throw Failure("append threw \(error)")
                }
            }
            do {
                log.configuration.retentionBytes = Int64(log.sizeInBytes / 2)
                _ = try log.applyRetention(nowMilliseconds: 0)
                logStartOffset = log.logStartOffset
                _ = log.takeSyncWork()
                try log.closeCleanly()
            } catch {
                throw Failure("retention or close threw \(error)")
            }
            let names = (try? listFiles(directory)) ?? []
            firstRunFile = names.filter { $0.hasSuffix(".keys") && $0 != "retired.keys" }.sorted().first ?? "00000000000000000000.keys"
        }

        /// Every key's last offset (all of them, or for keys with no record from the log start on,
        /// possibly none when `retiredMayBeGone`), and every key's records read by key.
        func check(_ log: PartitionLog, retiredMayBeGone: Bool, _ what: String) throws(Failure) {
            for key in Self.keys {
                let expected = records.last { $0.key == key }?.offset
                let found: Int64?
                do { found = try log.lastOffset(ofKey: key) } catch { throw Failure("\(what): lastOffset threw \(error)") }
                let stored = records.contains { $0.key == key && $0.offset >= logStartOffset }
                try require(found == expected || (retiredMayBeGone && !stored && found == nil),
                            "\(what): key \(String(decoding: key, as: UTF8.self)) last offset \(String(describing: found)), expected \(String(describing: expected))")
                var read: [Int64] = []
                do {
                    let slices = try log.read(key: key, from: 0, maxBytes: 1 << 20, endOffset: log.logEndOffset)
                    for slice in slices.slices {
                        var bytes = [UInt8](repeating: 0, count: slice.length)
                        _ = try bytes.withUnsafeMutableBytes { try slice.read(into: $0) }
                        read += try bytes.withUnsafeBytes { try RecordBatch.records(in: $0) }.filter { $0.key == key }.map(\.offset)
                    }
                } catch {
                    throw Failure("\(what): read of key \(String(decoding: key, as: UTF8.self)) threw \(error)")
                }
                let wanted = records.filter { $0.key == key && $0.offset >= logStartOffset }.map(\.offset)
                try require(read == wanted, "\(what): key \(String(decoding: key, as: UTF8.self)) read \(read), expected \(wanted)")
            }
        }
    }

    /// The names in a directory.
    static func listFiles(_ path: String) throws(Failure) -> [String] {
        guard let directory = opendir(path) else { throw Failure("opendir \(path) failed: errno \(errno)") }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    // MARK: segment-recovery

    /// The files of a partition directory, packed into one input:
    /// ```
    /// u8             flags (SegmentInput.Flags)
    /// [u64]          base offset of the first segment, top bit ignored   (flag baseOffset; else 0)
    /// [u16 + bytes]  the first segment's .index                          (flag index)
    /// [u16 + bytes]  the first segment's .timeindex                      (flag timeIndex)
    /// [u64 + u32]    the second segment's base offset, top bit ignored,
    ///                and the length of the first .log                    (flag secondSegment)
    /// rest           the first .log, then the second .log
    /// ```
    /// Lengths are cut to the bytes that are left; missing bytes read as zero.
    struct SegmentInput {
        struct Flags: OptionSet {
            let rawValue: UInt8
            static let index = Flags(rawValue: 1)
            static let timeIndex = Flags(rawValue: 2)
            static let secondSegment = Flags(rawValue: 4)
            static let baseOffset = Flags(rawValue: 8)
            /// An index entry every 64 bytes instead of every 4096.
            static let smallIndexInterval = Flags(rawValue: 16)
        }

        var flags: Flags = []
        var baseOffset: Int64 = 0
        var index: [UInt8] = []
        var timeIndex: [UInt8] = []
        var secondBaseOffset: Int64 = 0
        var log: [UInt8] = []
        var secondLog: [UInt8] = []

        init(flags: Flags, baseOffset: Int64 = 0, index: [UInt8] = [], timeIndex: [UInt8] = [], secondBaseOffset: Int64 = 0,
             log: [UInt8], secondLog: [UInt8] = []) {
            (self.flags, self.baseOffset, self.index, self.timeIndex) = (flags, baseOffset, index, timeIndex)
            (self.secondBaseOffset, self.log, self.secondLog) = (secondBaseOffset, log, secondLog)
        }

        init(parsing data: UnsafeRawBufferPointer) {
            var reader = InputReader(data)
            flags = Flags(rawValue: reader.integer(UInt8.self))
            if flags.contains(.baseOffset) { baseOffset = Int64(bitPattern: reader.integer(UInt64.self) & UInt64(Int64.max)) }
            if flags.contains(.index) { index = reader.bytes(Int(reader.integer(UInt16.self))) }
            if flags.contains(.timeIndex) { timeIndex = reader.bytes(Int(reader.integer(UInt16.self))) }
            if flags.contains(.secondSegment) {
                secondBaseOffset = Int64(bitPattern: reader.integer(UInt64.self) & UInt64(Int64.max))
                log = reader.bytes(Int(reader.integer(UInt32.self)))
                secondLog = reader.rest()
            } else {
                log = reader.rest()
            }
        }

        func encoded() -> [UInt8] {
            var bytes = [flags.rawValue]
            if flags.contains(.baseOffset) { bytes += littleEndian(UInt64(baseOffset)) }
            if flags.contains(.index) { bytes += littleEndian(UInt16(index.count)) + index }
            if flags.contains(.timeIndex) { bytes += littleEndian(UInt16(timeIndex.count)) + timeIndex }
            if flags.contains(.secondSegment) { bytes += littleEndian(UInt64(secondBaseOffset)) + littleEndian(UInt32(log.count)) }
            return bytes + log + (flags.contains(.secondSegment) ? secondLog : [])
        }

        var configuration: LogConfiguration {
            LogConfiguration(segmentBytes: 1 << 20, segmentMilliseconds: nil,
                             indexIntervalBytes: flags.contains(.smallIndexInterval) ? 64 : 4096,
                             fsync: .never, retentionMilliseconds: nil)
        }

        /// Creates `directory` holding the input's files.
        func write(to directory: String) throws(Failure) {
            try makeDirectory(directory)
            try writeFile("\(directory)/\(segmentFileName(baseOffset, ".log"))", log)
            if flags.contains(.index) { try writeFile("\(directory)/\(segmentFileName(baseOffset, ".index"))", index) }
            if flags.contains(.timeIndex) { try writeFile("\(directory)/\(segmentFileName(baseOffset, ".timeindex"))", timeIndex) }
            if flags.contains(.secondSegment), secondBaseOffset != baseOffset {
                try writeFile("\(directory)/\(segmentFileName(secondBaseOffset, ".log"))", secondLog)
            }
        }
    }

    /// Segment files as a partition directory: after a crash (every batch verified) the log must
    /// open; every offset from its start to its end must read, as whole valid batches with dense
    /// offsets; timestamp lookups and batch-header walks must work; a reopen must recover nothing
    /// more and find the same range; an append must continue at the end; and a clean close and
    /// an open after a clean shutdown must find the same range again. The same files opened
    /// after a "clean shutdown" first (cheap checks that trust the indexes) must not trap, and
    /// a later open after a crash must bring them back to all of the above.
    static func segmentRecovery(_ data: UnsafeRawBufferPointer) throws {
        let input = SegmentInput(parsing: data)
        let scratch = try ScratchDirectory()
        for (name, firstMode) in [("crash", PartitionLog.OpenMode.afterCrash), ("clean", .afterCleanShutdown)] {
            let directory = "\(scratch.path)/\(name)"
            try input.write(to: directory)
            try checkLog(in: directory, configuration: input.configuration, firstMode: firstMode)
        }
    }

    private static func checkLog(in directory: String, configuration: LogConfiguration, firstMode: PartitionLog.OpenMode) throws(Failure) {
        let trusted = firstMode == .afterCrash
        let first = try openLog(directory, configuration, firstMode)
        try require(first.logStartOffset <= first.logEndOffset, "opened with start \(first.logStartOffset) after end \(first.logEndOffset)")
        let range = first.logStartOffset...first.logEndOffset
        try checkReads(first, strict: trusted)
        first.close()

        let second = try openLog(directory, configuration, .afterCrash)
        if trusted {
            try require(second.logStartOffset...second.logEndOffset == range,
                        "reopened as \(second.logStartOffset)..<\(second.logEndOffset), first open found \(range)")
            try requireNothingRecovered(second, "the second open after a crash")
        }
        try checkReads(second, strict: true)
        try appendOneBatch(to: second)
        let appended = second.logStartOffset...second.logEndOffset
        do {
            try second.closeCleanly()
        } catch {
            throw Failure("closeCleanly threw \(error)")
        }

        let third = try openLog(directory, configuration, .afterCleanShutdown)
        try require(third.logStartOffset...third.logEndOffset == appended,
                    "open after a clean shutdown found \(third.logStartOffset)..<\(third.logEndOffset), it was \(appended)")
        try requireNothingRecovered(third, "the open after a clean shutdown")
        try checkReads(third, strict: true)
        third.close()
    }

    private static func openLog(_ directory: String, _ configuration: LogConfiguration, _ mode: PartitionLog.OpenMode) throws(Failure) -> PartitionLog {
        do {
            return try PartitionLog(directory: directory, configuration: configuration, mode: mode, logger: logger)
        } catch {
            throw Failure("open (\(mode)) threw \(error)")
        }
    }

    /// Reports of gaps between segments recur at every open; cuts and rebuilds must not.
    private static func requireNothingRecovered(_ log: PartitionLog, _ what: String) throws(Failure) {
        for report in log.recoveryReports {
            try require(report.truncatedBytes == 0 && !report.indexRebuilt && report.setAsidePath == nil,
                        "\(what) recovered again: \(report)")
        }
    }

    /// Reads the log from start to end in slices of one batch and of up to 1 MiB, checking that
    /// each slice holds whole valid batches with dense offsets; reads a few offsets on their own;
    /// looks up timestamps; walks the batch headers. With `strict`, each of those must succeed;
    /// without (the indexes were trusted), they may throw but must not trap.
    private static func checkReads(_ log: PartitionLog, strict: Bool) throws(Failure) {
        let start = log.logStartOffset
        let end = log.logEndOffset
        var timestamps: [Int64] = [.min, -1, 0, .max]
        var offset = start
        var round = 0
        while offset < end {
            round += 1
            guard let slice = try read(log, from: offset, maxBytes: round % 2 == 0 ? 1 : 1 << 20, strict: strict) else { break }
            let batches = try batchesOf(slice, strict: strict)
            guard let batches else { return }
            for header in batches.prefix(8) { timestamps += [header.maxTimestamp, header.firstTimestamp, header.maxTimestamp &+ 1] }
            offset = slice.nextOffset
        }
        if start < end {
            for probe in [start, start + (end - start) / 2, end - 1] {
                guard let slice = try read(log, from: probe, maxBytes: 1, strict: strict) else { continue }
                try require(!strict || slice.nextOffset > probe, "read from \(probe) returned a slice ending at \(slice.nextOffset)")
            }
        }
        do {
            for timestamp in timestamps {
                let found = try log.offset(atOrAfterTimestamp: timestamp)
                try require(!strict || (start...end).contains(found),
                            "timestamp \(timestamp) found offset \(found) outside \(start)...\(end)")
            }
            _ = try log.batchHeaders(inLastSegments: 4)
        } catch let failure as Failure {
            throw failure
        } catch {
            try require(!strict, "a lookup threw \(error)")
        }
    }

    /// One read; nil when a non-strict read failed (the caller stops there).
    private static func read(_ log: PartitionLog, from offset: Int64, maxBytes: Int, strict: Bool) throws(Failure) -> LogSlice? {
        let slice: LogSlice?
        do {
            slice = try log.read(from: offset, maxBytes: maxBytes, endOffset: .max)
        } catch {
            try require(!strict, "read from \(offset) in \(log.logStartOffset)..<\(log.logEndOffset) threw \(error)")
            return nil
        }
        guard let slice else {
            // Nothing at or after `offset` yet: it lies in a gap before an empty last segment
            // (recovery emptied it), where a fetch waits like one at the end. No batch may hold it.
            if strict {
                let headers: [RecordBatch.Header]
                do {
                    headers = try log.batchHeaders(inLastSegments: .max)
                } catch {
                    throw Failure("batchHeaders threw \(error)")
                }
                let holding = headers.first { $0.baseOffset.addingReportingOverflow(Int64($0.lastOffsetDelta)).partialValue >= offset }
                try require(holding == nil, "read from \(offset) found nothing, but the batch at \(holding.map { String($0.baseOffset) } ?? "") holds it")
            }
            return nil
        }
        try require(slice.length > 0 && slice.firstOffset < slice.nextOffset && slice.nextOffset > offset,
                    "read from \(offset) returned \(slice.length) bytes of \(slice.firstOffset)..<\(slice.nextOffset)")
        return slice
    }

    /// The headers of the batches in `slice`: whole, valid, dense from its first offset to its
    /// next offset. Nil when a non-strict check failed.
    private static func batchesOf(_ slice: LogSlice, strict: Bool) throws(Failure) -> [RecordBatch.Header]? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: slice.length, alignment: 8)
        defer { buffer.deallocate() }
        do {
            _ = try slice.read(into: buffer)
        } catch {
            try require(!strict, "reading a slice of \(slice.length) bytes threw \(error)")
            return nil
        }
        var headers: [RecordBatch.Header] = []
        var position = 0
        var expected = slice.firstOffset
        while position < slice.length {
            let rest = UnsafeRawBufferPointer(rebasing: buffer[position...])
            let header: RecordBatch.Header
            do {
                header = try RecordBatch.readHeader(rest)
                guard header.totalSize <= rest.count else { throw WireError(.corruptBatch, "batch of \(header.totalSize) bytes, \(rest.count) left") }
                try RecordBatch.validate(UnsafeRawBufferPointer(rebasing: rest[..<header.totalSize]))
            } catch {
                try require(!strict, "slice \(slice.firstOffset)..<\(slice.nextOffset), byte \(position): \(error)")
                return nil
            }
            let (next, overflow) = header.baseOffset.addingReportingOverflow(Int64(header.lastOffsetDelta) + 1)
            guard header.baseOffset == expected, !overflow else {
                try require(!strict, "slice \(slice.firstOffset)..<\(slice.nextOffset), byte \(position): batch at offset \(header.baseOffset), expected \(expected)")
                return nil
            }
            headers.append(header)
            expected = next
            position += header.totalSize
        }
        try require(!strict || expected == slice.nextOffset, "slice says it ends at \(slice.nextOffset), its batches end at \(expected)")
        return headers
    }

    static let appendedBatch: [UInt8] = {
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 1_700_000_000_000, key: Array("k".utf8), value: Array("appended after recovery".utf8))
        return builder.finish()
    }()

    /// Appends one batch, which must get the end offset and read back. Skipped for logs that end
    /// within 2^40 of Int64.max (offsets there are not a state the broker reaches by appending).
    private static func appendOneBatch(to log: PartitionLog) throws(Failure) {
        let end = log.logEndOffset
        guard end < Int64.max - (1 << 40) else { return }
        do {
            let result = try appendedBatch.withUnsafeBytes { bytes in try log.append(bytes) }
            try require(result.baseOffset == end && log.logEndOffset == end + 1,
                        "append at end \(end) got \(result.baseOffset), the log now ends at \(log.logEndOffset)")
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("append at end \(end) threw \(error)")
        }
        guard let slice = try read(log, from: end, maxBytes: 1 << 20, strict: true) else { return }
        try require(slice.firstOffset == end && slice.nextOffset == end + 1,
                    "the appended batch reads back as \(slice.firstOffset)..<\(slice.nextOffset)")
    }

    // MARK: offset-store

    /// The files of an offset-store directory, packed into one input:
    /// ```
    /// u8                flags: bit 0 snapshot, bits 1-2 number of logs (0-3),
    ///                   bit 3 compact before the last reopen, bit 4 leave a stray .tmp file
    /// [u32 + bytes]     offsets.snapshot                                  (bit 0)
    /// per log:          u8 generation, then u32 + bytes (the last log: the rest)
    /// ```
    struct OffsetStoreInput {
        var snapshot: [UInt8]?
        var logs: [(generation: UInt8, bytes: [UInt8])]
        var compact: Bool
        var strayTemporaryFile: Bool

        init(snapshot: [UInt8]?, logs: [(generation: UInt8, bytes: [UInt8])], compact: Bool = false, strayTemporaryFile: Bool = false) {
            precondition(logs.count <= 3)
            (self.snapshot, self.logs, self.compact, self.strayTemporaryFile) = (snapshot, logs, compact, strayTemporaryFile)
        }

        init(parsing data: UnsafeRawBufferPointer) {
            var reader = InputReader(data)
            let flags = reader.integer(UInt8.self)
            snapshot = flags & 1 != 0 ? reader.bytes(Int(reader.integer(UInt32.self))) : nil
            let count = Int(flags >> 1) & 3
            logs = (0..<count).map { number in
                let generation = reader.integer(UInt8.self)
                return (generation, number == count - 1 ? reader.rest() : reader.bytes(Int(reader.integer(UInt32.self))))
            }
            compact = flags & 8 != 0
            strayTemporaryFile = flags & 16 != 0
        }

        func encoded() -> [UInt8] {
            var flags = UInt8(logs.count) << 1
            if snapshot != nil { flags |= 1 }
            if compact { flags |= 8 }
            if strayTemporaryFile { flags |= 16 }
            var bytes = [flags]
            if let snapshot { bytes += littleEndian(UInt32(snapshot.count)) + snapshot }
            for (number, log) in logs.enumerated() {
                bytes.append(log.generation)
                if number < logs.count - 1 { bytes += littleEndian(UInt32(log.bytes.count)) }
                bytes += log.bytes
            }
            return bytes
        }

        func write(to directory: String) throws(Failure) {
            try makeDirectory(directory)
            if let snapshot { try writeFile("\(directory)/offsets.snapshot", snapshot) }
            if strayTemporaryFile { try writeFile("\(directory)/offsets.snapshot.tmp", snapshot ?? [0]) }
            for log in logs { try writeFile("\(directory)/\(segmentFileName(Int64(log.generation), ".log"))", log.bytes) }
        }
    }

    typealias OffsetMap = [String: [CommittedOffset]]

    /// Offset-store files: the store opens (or refuses a newer format version with `corrupt`);
    /// a reopen recovers nothing more and holds the same map; a commit, an optional compaction
    /// and another reopen give that map plus the commit.
    static func offsetStore(_ data: UnsafeRawBufferPointer) throws {
        let input = OffsetStoreInput(parsing: data)
        let scratch = try ScratchDirectory()
        let directory = "\(scratch.path)/offsets"
        try input.write(to: directory)
        let first: OffsetStore
        do throws(StorageError) {
            first = try OffsetStore(directory: directory, logger: logger)
        } catch {
            try require(error.code == .corrupt && error.message.contains("format version"), "open threw \(error)")
            return
        }
        let map = contents(of: first)
        first.close()

        let second = try openStore(directory)
        try require(contents(of: second) == map, "a reopen holds \(contents(of: second)), the first open held \(map)")
        try require(second.recoveryReports.isEmpty, "a reopen recovered again: \(second.recoveryReports)")
        let commit = CommittedOffset(partition: TopicPartition(topic: "fuzz", partition: 0), offset: 7, metadata: "after recovery")
        var expected = map
        expected["fuzz-group", default: []].removeAll { $0.partition == commit.partition }
        expected["fuzz-group", default: []].append(commit)
        expected["fuzz-group"]?.sort { $0.partition < $1.partition }
        do {
            _ = try second.commit(group: "fuzz-group", offsets: [commit])
            if input.compact { try second.compact() }
        } catch {
            throw Failure("commit or compaction threw \(error)")
        }
        try require(contents(of: second) == expected, "after a commit the store holds \(contents(of: second)), expected \(expected)")
        second.close()

        let third = try openStore(directory)
        try require(contents(of: third) == expected, "after a commit and a reopen the store holds \(contents(of: third)), expected \(expected)")
        try require(third.recoveryReports.isEmpty, "the reopen after a commit recovered: \(third.recoveryReports)")
        third.close()
    }

    private static func openStore(_ directory: String) throws(Failure) -> OffsetStore {
        do {
            return try OffsetStore(directory: directory, logger: logger)
        } catch {
            throw Failure("reopen threw \(error)")
        }
    }

    private static func contents(of store: OffsetStore) -> OffsetMap {
        Dictionary(uniqueKeysWithValues: store.groups.map { ($0, store.committed(group: $0)) })
    }

    // MARK: Helpers

    /// A broken invariant.
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private static func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(Failure) {
        if !condition { throw Failure(message()) }
    }

    /// Reads the fields of a packed input; past the end, integers read as 0 and byte fields as empty.
    struct InputReader {
        let data: UnsafeRawBufferPointer
        var position = 0

        init(_ data: UnsafeRawBufferPointer) { self.data = data }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
            var value: T = 0
            for index in 0..<MemoryLayout<T>.size where position < data.count {
                value |= T(data[position]) << (8 * index)
                position += 1
            }
            return value
        }

        mutating func bytes(_ count: Int) -> [UInt8] {
            let end = min(data.count, position + count)
            defer { position = end }
            return Array(data[position..<end])
        }

        mutating func rest() -> [UInt8] { bytes(data.count - position) }
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    /// `00000000000000000042.log` for 42 and ".log".
    static func segmentFileName(_ number: Int64, _ suffix: String) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// Where scratch directories go: `SPOOL_FUZZ_TMPDIR`, else /dev/shm (tmpfs: syncs cost
    /// nothing), else `TMPDIR`, else /tmp.
    static let scratchRoot: String = {
        if let root = getenv("SPOOL_FUZZ_TMPDIR") { return String(cString: root) }
        if access("/dev/shm", W_OK) == 0 { return "/dev/shm" }
        return getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    }()

    /// A fresh directory, removed with everything in it when dropped.
    final class ScratchDirectory {
        let path: String

        init() throws(Failure) {
            var template = Array("\(StorageFuzzTargets.scratchRoot)/spool-fuzz.XXXXXX".utf8CString)
            guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw Failure("mkdtemp in \(StorageFuzzTargets.scratchRoot) failed: errno \(errno)")
            }
            path = String(cString: created)
        }

        deinit { Self.remove(path) }

        private static func remove(_ path: String) {
            if let directory = opendir(path) {
                while let entry = readdir(directory) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                    guard name != ".", name != ".." else { continue }
                    if entry.pointee.d_type == UInt8(DT_DIR) { remove("\(path)/\(name)") } else { unlink("\(path)/\(name)") }
                }
                closedir(directory)
            }
            rmdir(path)
        }
    }

    static func makeDirectory(_ path: String) throws(Failure) {
        guard mkdir(path, 0o755) == 0 else { throw Failure("mkdir \(path) failed: errno \(errno)") }
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws(Failure) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Failure("cannot create \(path): errno \(errno)") }
        defer { close(descriptor) }
        let written = bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let count = Glibc.write(descriptor, buffer.baseAddress! + done, buffer.count - done)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                done += count
            }
            return done
        }
        guard written == bytes.count else { throw Failure("write to \(path) failed: errno \(errno)") }
    }
}

#if !SPOOL_FUZZ

// MARK: - Tests

@Suite struct FuzzCorpusTests {
    @Test(arguments: StorageFuzzTargets.all.map(\.name))
    func replaysTheCommittedCorpus(target: String) throws {
        let run = try #require(StorageFuzzTargets.all.first { $0.name == target }).run
        let corpus = try FuzzCorpus(target: target)
        #expect(corpus.files.count >= 3, "Fuzz/Corpus/\(target) holds only \(corpus.files.count) files")
        for (name, input) in corpus.files {
            do {
                try FuzzCorpus.withExactBytes(input, run)
            } catch {
                Issue.record("Fuzz/Corpus/\(target)/\(name): \(error)")
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: StorageFuzzTargets.all.map(\.name))
    func survivesSeededMutationsOfTheCorpus(target: String) throws {
        let run = try #require(StorageFuzzTargets.all.first { $0.name == target }).run
        let corpus = try FuzzCorpus(target: target)
        var mutator = FuzzMutator(rng: SeededGenerator.logged("survivesSeededMutationsOfTheCorpus(\(target))"),
                                  corpus: corpus.files.map(\.bytes))
        let count = try mutator.run(for: FuzzMutator.budget) { input in try FuzzCorpus.withExactBytes(input, run) }
        print("fuzz \(target): \(count) mutated inputs in \(FuzzMutator.budget)")
    }

    /// Rewrites the seed files of the storage targets from real files: logs written by
    /// PartitionLog (with their indexes, rolled, torn) and offset stores written by OffsetStore
    /// (logs, snapshots). Run with SPOOL_FUZZ_WRITE_SEEDS=1.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SPOOL_FUZZ_WRITE_SEEDS"] == "1"))
    func writesTheSeedCorpus() throws {
        try FuzzCorpus.writeSeeds(try Self.segmentSeeds(), target: "segment-recovery")
        try FuzzCorpus.writeSeeds(try Self.offsetStoreSeeds(), target: "offset-store")
        try FuzzCorpus.writeSeeds(try Self.keyIndexSeeds(), target: "key-index")
    }

    /// The genuine first run file and retired table of ``StorageFuzzTargets/KeyIndexLog``, each
    /// also cut short, with a flipped byte, empty, and with a key count of 2^64 - 1.
    static func keyIndexSeeds() throws -> [(String, [UInt8])] {
        let scratch = try TemporaryDirectory(prefix: "spool-key-seeds")
        let log = try StorageFuzzTargets.KeyIndexLog(directory: scratch.appending("keys"))
        var seeds: [(String, [UInt8])] = []
        for (selector, name) in [(UInt8(0), log.firstRunFile), (1, "retired.keys")] {
            let genuine = try fileBytes(scratch.appending("keys/\(name)"))
            var flipped = genuine
            flipped[flipped.count / 3] ^= 0x40
            var huge = genuine
            for index in 24..<32 { huge[index] = 0xff }  // keyCount: 2^64 - 1 (an overflow once)
            seeds += [("seed-\(selector)-genuine", [selector] + genuine), ("seed-\(selector)-cut", [selector] + genuine.dropLast(9)),
                      ("seed-\(selector)-flipped", [selector] + flipped), ("seed-\(selector)-empty", [selector]),
                      ("seed-\(selector)-huge-key-count", [selector] + huge)]
        }
        return seeds
    }

    typealias SegmentInput = StorageFuzzTargets.SegmentInput

    static func segmentSeeds() throws -> [(String, [UInt8])] {
        let directory = try TemporaryDirectory(prefix: "spool-fuzz-seeds")
        let logger = StorageFuzzTargets.logger
        var rng = SeededGenerator(seed: 11)
        let configuration = LogConfiguration(segmentBytes: 2_000, segmentMilliseconds: nil, indexIntervalBytes: 64,
                                             fsync: .never, retentionMilliseconds: nil)
        let log = try PartitionLog(directory: directory.path, configuration: configuration, logger: logger)
        for number in 0..<14 {
            var batch = makeBatch(timestamp: 1_700_000_000_000 + Int64(number) * 10, maxValueBytes: 60, using: &rng)
            if number == 5 {
                var builder = RecordBatchBuilder()
                builder.producerID = 99
                builder.producerEpoch = 0
                builder.baseSequence = 0
                builder.append(timestamp: 1_700_000_000_100, key: nil, value: Array("idempotent".utf8))
                batch = builder.finish()
            }
            _ = try batch.withUnsafeBytes { try log.append($0) }
        }
        let ends = log.logEndOffset
        try log.closeCleanly()
        func file(_ base: Int64, _ suffix: String) throws -> [UInt8] {
            Array(try Data(contentsOf: URL(fileURLWithPath: directory.appending(StorageFuzzTargets.segmentFileName(base, suffix)))))
        }
        let bases = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".log") }
            .compactMap { Int64($0.dropLast(4)) }.sorted()
        try #require(bases.count >= 2 && ends > bases[1], "the seed log must roll: \(bases)")
        let (log0, index0, time0) = (try file(0, ".log"), try file(0, ".index"), try file(0, ".timeindex"))
        let second = bases[1]
        let (log1, index1, time1) = (try file(second, ".log"), try file(second, ".index"), try file(second, ".timeindex"))
        let lastBatchStart = try log0.withUnsafeBytes { bytes in
            var position = 0
            var last = 0
            while position < bytes.count {
                last = position
                position += try RecordBatch.readHeader(UnsafeRawBufferPointer(rebasing: bytes[position...])).totalSize
            }
            return last
        }
        let small: SegmentInput.Flags = .smallIndexInterval
        let seeds: [(String, SegmentInput)] = [
            ("seed-segment-with-indexes", SegmentInput(flags: [small, .index, .timeIndex], index: index0, timeIndex: time0, log: log0)),
            ("seed-segment-log-only", SegmentInput(flags: [small], log: log0)),
            ("seed-segment-default-interval", SegmentInput(flags: [.index, .timeIndex], index: index0, timeIndex: time0, log: log0)),
            ("seed-two-segments", SegmentInput(flags: [small, .index, .timeIndex, .secondSegment], index: index0, timeIndex: time0,
                                               secondBaseOffset: second, log: log0, secondLog: log1)),
            ("seed-second-segment-alone", SegmentInput(flags: [small, .baseOffset, .index, .timeIndex], baseOffset: second,
                                                       index: index1, timeIndex: time1, log: log1)),
            ("seed-torn-last-batch", SegmentInput(flags: [small, .index, .timeIndex], index: index0, timeIndex: time0,
                                                  log: Array(log0[..<(lastBatchStart + (log0.count - lastBatchStart) / 2)]))),
            ("seed-zero-filled-tail", SegmentInput(flags: [small], log: log0 + [UInt8](repeating: 0, count: 200))),
            ("seed-gap-between-segments", SegmentInput(flags: [small, .secondSegment], secondBaseOffset: second + 5,
                                                       log: log0, secondLog: log1)),
            ("seed-empty", SegmentInput(flags: [], log: [])),
        ]
        return seeds.map { ($0.0, $0.1.encoded()) }
    }

    typealias OffsetStoreInput = StorageFuzzTargets.OffsetStoreInput

    static func offsetStoreSeeds() throws -> [(String, [UInt8])] {
        let directory = try TemporaryDirectory(prefix: "spool-fuzz-seeds")
        func file(_ name: String) throws -> [UInt8] {
            Array(try Data(contentsOf: URL(fileURLWithPath: directory.appending(name))))
        }
        func offsets(_ topic: String, _ count: Int32, _ base: Int64) -> [CommittedOffset] {
            (0..<count).map { CommittedOffset(partition: TopicPartition(topic: topic, partition: $0), offset: base + Int64($0),
                                              metadata: $0 == 0 ? "" : "m\($0)") }
        }
        let store = try OffsetStore(directory: directory.path, logger: StorageFuzzTargets.logger)
        _ = try store.commit(group: "workers", offsets: offsets("orders", 3, 10))
        _ = try store.commit(group: "заказы-🚀", offsets: offsets("stock", 2, 0))
        _ = try store.commit(group: "workers", offsets: offsets("orders", 1, 42))
        let logOnly = try file("00000000000000000000.log")
        try store.compact()
        _ = try store.commit(group: "billing", offsets: offsets("payments", 2, 7))
        _ = try store.commit(group: "workers", offsets: [CommittedOffset(partition: TopicPartition(topic: "orders", partition: 2), offset: 3)])
        let snapshot = try file("offsets.snapshot")
        let log1 = try file("00000000000000000001.log")
        store.close()

        let seeds: [(String, OffsetStoreInput)] = [
            ("seed-log-only", OffsetStoreInput(snapshot: nil, logs: [(0, logOnly)])),
            ("seed-snapshot-and-log", OffsetStoreInput(snapshot: snapshot, logs: [(1, log1)])),
            ("seed-snapshot-and-log-compacted", OffsetStoreInput(snapshot: snapshot, logs: [(1, log1)], compact: true)),
            ("seed-snapshot-stale-log-and-log", OffsetStoreInput(snapshot: snapshot, logs: [(0, logOnly), (1, log1)])),
            ("seed-two-logs-no-snapshot", OffsetStoreInput(snapshot: nil, logs: [(0, logOnly), (1, log1)], compact: true)),
            ("seed-torn-log", OffsetStoreInput(snapshot: nil, logs: [(0, Array(logOnly.dropLast(5)))])),
            ("seed-snapshot-only-with-stray-temporary", OffsetStoreInput(snapshot: snapshot, logs: [], strayTemporaryFile: true)),
            ("seed-empty", OffsetStoreInput(snapshot: nil, logs: [])),
        ]
        return seeds.map { ($0.0, $0.1.encoded()) }
    }
}

#endif
