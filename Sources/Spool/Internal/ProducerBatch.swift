import Foundation
import SpoolWire

/// A `send` call waiting for its record's acknowledgement (or its records', for a whole batch).
struct SendWaiter: Sendable {
    /// The record's position in its batch.
    let index: Int
    /// How many records from `index` on the caller sent (a conditional send's whole batch).
    var count = 1
    let continuation: CheckedContinuation<Result<PublishResult, SpoolError>, Never>
}

/// What the broker's answer to one attempt means for the batch.
enum BatchOutcome: Sendable {
    /// Stored at `baseOffset` (-1: stored earlier, offset unknown).
    case stored(baseOffset: Int64, durability: Durability)
    /// Refused for good (too large, unknown topic, not authorized, …); nothing was stored.
    case rejected(SpoolError)
    /// Refused because a batch before it is missing; `expected` is the sequence the broker wanted.
    case outOfOrder(expected: Int32?, SpoolError)
    /// Fate unknown (connection lost, timeout, broker restarting): send it again, same sequence.
    case retry(SpoolError)

    init(_ result: Result<ProduceResponse, SpoolError>) {
        switch result {
        case .success(let response):
            self = .stored(baseOffset: response.baseOffset, durability: response.durability)
        case .failure(let error) where error.code == .duplicateSequence:
            self = .stored(baseOffset: -1, durability: .pageCache)
        case .failure(let error) where error.code == .outOfOrderSequence:
            self = .outOfOrder(expected: error.details["expected"].flatMap { Int32(exactly: $0) }, error)
        case .failure(let error) where error.isRetriable || error.code == .cancelled:
            self = .retry(error)
        case .failure(let error):
            self = .rejected(error)
        }
    }

    /// True for the broker's refusals of a batch's contents or target, which it answers before
    /// appending: the batch was certainly not stored (unlike a reply that did not parse, say).
    static func refusedBeforeStoring(_ error: SpoolError) -> Bool {
        refusals.contains(error.code)
    }

    /// True when `error` says the broker stored nothing of the batch: a refusal, a storage error
    /// (the append or its sync failed and was undone), or a sequence gap. Any other failure (a
    /// lost connection, a timeout) leaves the batch in doubt.
    static func storedNothing(_ error: SpoolError) -> Bool {
        [.storageError, .outOfOrderSequence].contains(error.code) || refusedBeforeStoring(error)
    }

    private static let refusals: Set<SpoolError.Code> = [
        .recordTooLarge, .keyConflict, .invalidTopicName, .unknownTopic, .unknownPartition, .notAuthorized, .invalidRequest,
        SpoolError.Code(ErrorCode.corruptBatch), SpoolError.Code(ErrorCode.inconsistentBatch), SpoolError.Code(ErrorCode.malformedRequest),
        SpoolError.Code(ErrorCode.unsupportedVersion), SpoolError.Code(ErrorCode.unsupportedOperation),
    ]

    /// True when the broker holds the batch: a stored batch is never sent with another sequence.
    var isStored: Bool { if case .stored = self { true } else { false } }
}

/// One batch of one partition, from its first record to its acknowledgement.
///
/// Life: *open* (records are appended to `builder`), *ready* (closed, waiting for an in-flight
/// slot), *in flight* (stamped with producer id, epoch and sequence, finished into `bytes`, sent
/// at least once). The sequence is stamped once, at the first send; a batch the broker may have
/// stored is only ever sent again with the same bytes.
struct ProducerBatch: Sendable {
    /// Increases with creation, producer-wide (flush marks compare against it).
    let id: UInt64
    /// The partition slot in ``ProducerState/partitions``.
    let slot: Int
    /// When the first record was buffered, in ``MonotonicClock`` nanoseconds (linger and
    /// delivery timeout count from here).
    let createdAt: UInt64
    /// The records while open or ready; nil once finished.
    var builder: RecordBatchBuilder?
    /// The finished batch, once in flight.
    var bytes: [UInt8] = []
    var recordCount = 0
    /// Record bytes counted against ``ProducerConfiguration/maxBytesInFlight``.
    var accountedBytes = 0
    /// `send` callers waiting for records of this batch.
    var waiters: [SendWaiter] = []
    /// Records buffered by `enqueue`, whose failure `flush` reports.
    var enqueuedCount = 0
    var baseSequence: Int32 = -1
    var epoch: Int16 = -1
    /// Sends so far.
    var attempts = 0
    /// The last failure, for the delivery-timeout message.
    var lastError: SpoolError?
    /// An attempt is on the wire and its answer has not been processed.
    var awaitingReply = false
    /// The answer to the last attempt, kept until the batches before it are settled.
    var outcome: BatchOutcome?
    /// The encoded request of a batch that needs its own (a conditional append); nil: the
    /// partition's ``PartitionQueue/requestBody``.
    var requestBody: [UInt8]?

    init(id: UInt64, slot: Int, createdAt: UInt64, capacity: Int) {
        self.id = id
        self.slot = slot
        self.createdAt = createdAt
        builder = RecordBatchBuilder(capacity: capacity)
    }

    /// Stamps idempotence fields and finishes the batch into `bytes`.
    mutating func finish(producerID: Int64, epoch: Int16, baseSequence: Int32) {
        guard var builder else { return }
        builder.producerID = producerID
        builder.producerEpoch = epoch
        builder.baseSequence = baseSequence
        self.epoch = epoch
        self.baseSequence = baseSequence
        bytes = builder.finish()
        self.builder = nil
    }

    /// Moves a finished batch's sequence (of a batch the broker certainly did not store).
    mutating func restamp(baseSequence: Int32) {
        self.baseSequence = baseSequence
        BatchStamp.overwriteSequence(in: &bytes, baseSequence: baseSequence)
    }
}

/// Offsets of the idempotence fields in a finished batch (see ``RecordBatch`` for the layout).
enum BatchStamp {
    /// `crc`: u32 CRC-32C of bytes [17, end).
    static let crcOffset = 13
    /// `baseSequence`: i32.
    static let baseSequenceOffset = 49

    /// Rewrites `baseSequence` and the checksum that covers it.
    static func overwriteSequence(in bytes: inout [UInt8], baseSequence: Int32) {
        precondition(bytes.count >= RecordBatch.headerSize, "not a finished batch")
        write(baseSequence, at: baseSequenceOffset, in: &bytes)
        let crc = bytes.withUnsafeBytes { RecordBatch.computeChecksum($0) }
        write(crc, at: crcOffset, in: &bytes)
    }

    private static func write<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { source in
            for (index, byte) in source.enumerated() { bytes[offset + index] = byte }
        }
    }
}

/// Sizes of records in the batch format, for limits and accounting.
enum RecordSize {
    /// An upper bound on the bytes `record` adds to a batch (varints at their widest).
    @inline(__always)
    static func upperBound(key: [UInt8]?, value: [UInt8], headers: [RecordHeader]) -> Int {
        var size = 40 + (key?.count ?? 0) + value.count
        for header in headers { size += 10 + header.name.utf8.count + header.value.count }
        return size
    }

    /// The exact size of a batch holding only this record, timestamped as the batch.
    static func loneBatch(key: [UInt8]?, value: [UInt8], headers: [RecordHeader]) -> Int {
        let length = RecordBatchBuilder.recordLength(timestampDelta: 0, offsetDelta: 0, key: key, value: value, headers: headers)
        return RecordBatch.headerSize + WireWriter.varintSize(UInt64(length)) + length
    }
}

/// Monotonic time in nanoseconds (`CLOCK_MONOTONIC`): a plain integer, cheap to read and to
/// store (``ContinuousClock/Instant`` is a resilient type, which would make every struct
/// holding one slower to copy and to access).
enum MonotonicClock {
    static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }
}

/// Resumes the producer's loop; a class so that the state holding it keeps a fixed layout
/// (``CheckedContinuation`` is a resilient type).
final class LoopWaiter: Sendable {
    let continuation: CheckedContinuation<Void, Never>
    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }
    func resume() { continuation.resume() }
}

extension Duration {
    /// Whole nanoseconds, 0 for negative durations, saturating at `UInt64.max`.
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 || seconds > 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .max }
        let (total, overflow2) = whole.addingReportingOverflow(UInt64(max(0, attoseconds / 1_000_000_000)))
        return overflow2 ? .max : total
    }
}

extension UInt64 {
    /// `self + other`, or `UInt64.max` where that overflows (deadlines of "never").
    @inline(__always)
    func saturatingAdd(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
