import SpoolStorage
import SpoolWire

/// What one partition remembers of its idempotent producers: for each producer id, its epoch and
/// its last ``retainedBatches`` batches (sequence range → offsets), so a retried batch is told
/// apart from a new one and answered with the offset it got the first time.
///
/// Rules for a batch with a producer id (batches without one, id -1, are always appended):
/// - unknown id, or an epoch other than the one stored: appended if `baseSequence` is 0 (a new
///   producer or epoch), else refused as out of order with 0 expected: either a batch before it
///   was refused (a full disk) and must come first, or the broker forgot the producer (its last
///   batch lies before the segments scanned at open) and the producer starts its sequence over.
///   Appending it would let the earlier batch's retry look like a duplicate and be dropped;
/// - `baseSequence` = last stored sequence + 1: appended;
/// - the sequence range of a retained batch: a duplicate, answered with that batch's offset;
/// - any other sequence at or below the last: a duplicate older than the retained window;
/// - a sequence further ahead: out of order (an earlier batch is missing).
///
/// Rebuilt from the batch headers of the log's newest segments when a partition opens and after
/// the log is cut back, so it survives restarts and never remembers a batch the log lost.
struct ProducerStates {
    /// Batches remembered per producer and partition; a producer keeps at most this many in flight.
    static let retainedBatches = 8
    /// Segments whose batch headers rebuild the state at open.
    static let segmentsScannedAtOpen = 2

    /// A stored batch of a producer.
    struct StoredBatch: Equatable {
        let baseSequence: Int32
        let lastSequence: Int32
        let baseOffset: Int64
        let lastOffset: Int64
    }

    /// What to do with an incoming batch.
    enum Verdict: Equatable {
        /// Append it.
        case append
        /// Stored already, as this batch.
        case duplicate(StoredBatch)
        /// Stored already, too long ago to know where.
        case duplicateOutsideWindow
        /// A batch between the last stored and this one is missing.
        case outOfOrder(expected: Int32)
        /// The producer (or this epoch of it) has no batch here and this one does not start at 0.
        case unknownProducer
    }

    private struct Producer {
        var epoch: Int16
        /// Oldest first, at most ``ProducerStates/retainedBatches``.
        var batches: [StoredBatch]
    }

    private var producers: [Int64: Producer] = [:]

    /// An empty state.
    init() {}

    /// The state the batch headers of `log`'s newest ``segmentsScannedAtOpen`` segments leave behind.
    init(recoveredFrom log: PartitionLog) throws(StorageError) {
        self.init(headers: try log.batchHeaders(inLastSegments: Self.segmentsScannedAtOpen))
    }

    /// The state the batches described by `headers` (in log order) leave behind.
    init(headers: [RecordBatch.Header]) {
        for header in headers { record(header, baseOffset: header.baseOffset) }
    }

    /// Number of producers remembered.
    var count: Int { producers.count }

    /// The verdict for a batch with `header`.
    func verdict(for header: RecordBatch.Header) -> Verdict {
        guard header.producerID >= 0, header.baseSequence >= 0 else { return .append }
        guard let producer = producers[header.producerID], producer.epoch == header.producerEpoch, let last = producer.batches.last
        else { return header.baseSequence == 0 ? .append : .unknownProducer }
        let base = Int64(header.baseSequence)
        if base == Int64(last.lastSequence) + 1 { return .append }
        if let stored = producer.batches.first(where: { $0.baseSequence == header.baseSequence }),
           Int64(stored.lastSequence) == base + Int64(header.lastOffsetDelta) {
            return .duplicate(stored)
        }
        if base <= Int64(last.lastSequence) { return .duplicateOutsideWindow }
        return .outOfOrder(expected: last.lastSequence &+ 1)
    }

    /// Remembers an appended batch that got `baseOffset`.
    mutating func record(_ header: RecordBatch.Header, baseOffset: Int64) {
        guard header.producerID >= 0, header.baseSequence >= 0 else { return }
        let batch = StoredBatch(baseSequence: header.baseSequence,
                                lastSequence: Int32(clamping: Int64(header.baseSequence) + Int64(header.lastOffsetDelta)),
                                baseOffset: baseOffset, lastOffset: baseOffset + Int64(header.lastOffsetDelta))
        if var producer = producers[header.producerID], producer.epoch == header.producerEpoch {
            producer.batches.append(batch)
            if producer.batches.count > Self.retainedBatches { producer.batches.removeFirst() }
            producers[header.producerID] = producer
        } else {
            producers[header.producerID] = Producer(epoch: header.producerEpoch, batches: [batch])
        }
    }
}
