import BenchmarkSupport
import Spool
import SpoolWire

/// The records a case writes: values of `recordBytes` random bytes, no key, no headers, grouped in
/// batches of as many records as fit in the requested batch size (at least one).
struct RecordShape: Sendable {
    /// Bytes of each record's value.
    let recordBytes: Int
    /// Records per batch.
    let recordsPerBatch: Int
    /// The value every record carries.
    private let value: [UInt8]

    /// Records of `recordBytes` each, `batchBytes` of values per batch.
    init(recordBytes: Int, batchBytes: Int) {
        self.recordBytes = recordBytes
        recordsPerBatch = max(1, batchBytes / recordBytes)
        value = randomBytes(recordBytes)
    }

    /// Value bytes in one batch.
    var batchPayloadBytes: Int { recordBytes * recordsPerBatch }

    /// One batch's records, as the SDK publishes them.
    func outgoingRecords() -> [OutgoingRecord] {
        Array(repeating: OutgoingRecord(value: value), count: recordsPerBatch)
    }

    /// One batch encoded as the broker receives and stores it (base offset 0).
    func encodedBatch(timestamp: Int64) -> [UInt8] {
        var builder = RecordBatchBuilder(capacity: 2 * batchPayloadBytes)  // values plus framing
        for _ in 0..<recordsPerBatch {
            builder.append(timestamp: timestamp, key: nil, value: value)
        }
        return builder.finish()
    }
}
