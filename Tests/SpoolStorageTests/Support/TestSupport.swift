import Foundation
import Glibc
import Logging
@_spi(Testing) @testable import SpoolStorage
import SpoolWire
import SpoolTesting
import Testing

// MARK: Temporary directories

/// Runs `body` with a fresh directory under /tmp, removed afterwards.
func withTemporaryDirectory<Result>(_ body: (String) throws -> Result) throws -> Result {
    let directory = try TemporaryDirectory(prefix: "spool-storage")
    return try body(directory.path)
}

/// The same, for async bodies.
func withTemporaryDirectory<Result>(_ body: (String) async throws -> Result) async throws -> Result {
    let directory = try TemporaryDirectory(prefix: "spool-storage")
    return try await body(directory.path)
}

// MARK: Batches and the expected log

/// A batch of 1–5 random records (random keys, values up to `maxValueBytes`, sometimes a header).
func makeBatch(timestamp: Int64, maxValueBytes: Int = 300, using rng: inout SeededGenerator) -> [UInt8] {
    var builder = RecordBatchBuilder()
    for number in 0..<Int.random(in: 1...5, using: &rng) {
        let key = Bool.random(using: &rng) ? rng.bytes(Int.random(in: 0...16, using: &rng)) : nil
        let headers = Bool.random(using: &rng) ? [RecordHeader(name: "trace", value: rng.bytes(4))] : []
        builder.append(timestamp: timestamp + Int64(number), key: key,
                       value: rng.bytes(Int.random(in: 0...maxValueBytes, using: &rng)), headers: headers)
    }
    return builder.finish()
}

/// What a log should hold: the appended batches with the base offsets the log gave them.
struct LogModel {
    /// Each batch as it must be stored: stamped with its base offset.
    private(set) var batches: [[UInt8]] = []
    private(set) var baseOffsets: [Int64] = []
    private(set) var endOffset: Int64 = 0

    init(startOffset: Int64 = 0) { endOffset = startOffset }

    mutating func record(_ batch: [UInt8], _ result: AppendResult) {
        var stamped = batch
        withUnsafeBytes(of: result.baseOffset.littleEndian) { stamped.replaceSubrange(0..<8, with: $0) }
        batches.append(stamped)
        baseOffsets.append(result.baseOffset)
        endOffset = result.lastOffset + 1
    }

    var byteCount: Int { batches.reduce(0) { $0 + $1.count } }

    /// Keeps the first `count` batches.
    mutating func keepFirst(_ count: Int) {
        if count < baseOffsets.count { endOffset = baseOffsets[count] }  // also right when nothing is kept
        batches.removeSubrange(count...)
        baseOffsets.removeSubrange(count...)
    }

    /// All records, decoded.
    var records: [Record] { batches.flatMap { try! $0.withUnsafeBytes { try RecordBatch.records(in: $0) } } }
}

/// Appends `batch`, recording it in `model`; checks the offsets are dense.
@discardableResult
func append(_ batch: [UInt8], to log: PartitionLog, model: inout LogModel) throws -> AppendResult {
    let result = try batch.withUnsafeBytes { try log.append($0) }
    #expect(result.baseOffset == model.endOffset)
    model.record(batch, result)
    return result
}

func lastOffset(of batch: [UInt8]) -> Int64 {
    try! batch.withUnsafeBytes { try RecordBatch.readHeader($0).lastOffset }
}

extension LogSlice {
    /// The slice's bytes.
    func bytes() throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: length)
        let count = try bytes.withUnsafeMutableBytes { try read(into: $0) }
        #expect(count == length)
        return bytes
    }
}

/// Splits whole batches apart by their length fields.
func splitBatches(_ bytes: [UInt8]) throws -> [[UInt8]] {
    var batches: [[UInt8]] = []
    var position = 0
    while position < bytes.count {
        let size = try bytes[position...].withUnsafeBytes { try RecordBatch.readHeader($0).totalSize }
        batches.append(Array(bytes[position..<(position + size)]))
        position += size
    }
    return batches
}

/// Every batch of the log, fetched slice by slice with `maxBytes` per fetch.
func readAllBatches(_ log: PartitionLog, maxBytes: Int = 1 << 20) throws -> [[UInt8]] {
    var batches: [[UInt8]] = []
    var offset = log.logStartOffset
    while let slice = try log.read(from: offset, maxBytes: maxBytes, endOffset: log.logEndOffset) {
        batches += try splitBatches(try slice.bytes())
        offset = slice.nextOffset
    }
    return batches
}

/// Every record of the log, decoded.
func readAllRecords(_ log: PartitionLog) throws -> [Record] {
    try readAllBatches(log).flatMap { try $0.withUnsafeBytes { try RecordBatch.records(in: $0) } }
}

// MARK: Files

/// Paths of a partition directory's files with `suffix`, sorted (by base offset).
func files(in directory: String, suffix: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(suffix) }.sorted().map { "\(directory)/\($0)" }
}

func fileBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Every file of a directory tree with its bytes.
func snapshot(of directory: String) throws -> [String: [UInt8]] {
    var result: [String: [UInt8]] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
        result[name] = try fileBytes("\(directory)/\(name)")
    }
    return result
}

// MARK: Waiting

/// Polls `condition` every millisecond until it holds.
func waitUntil(_ condition: () -> Bool) async throws {
    while !condition() { try await Task.sleep(for: .milliseconds(1)) }
}

// MARK: Logging and configuration

extension Logger {
    /// A logger that drops everything.
    static let quiet = Logger(label: "spool.storage.tests", factory: { _ in SwiftLogNoOpLogHandler() })
}

func openLog(_ directory: String, segmentBytes: Int, indexIntervalBytes: Int = 256, io: FileIO = .system,
             logger: Logger = .quiet) throws -> PartitionLog {
    try PartitionLog(directory: directory, configuration: LogConfiguration(segmentBytes: segmentBytes, indexIntervalBytes: indexIntervalBytes),
                     logger: logger, io: io, openFiles: OpenFileCache(capacity: tinyFileCache))
}

/// The descriptors the logs of these tests may hold open: so few that every test of appends,
/// reads, rolls, recovery and retention also runs with files closed and reopened all the time.
let tinyFileCache = 3
