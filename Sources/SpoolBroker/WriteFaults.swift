import Logging
import SpoolStorage

/// A failure of the disk that makes a partition (or the committed-offset store) refuse writes:
/// from the first failed append, sync or commit until the first one of the same kind that works.
struct WriteFault: Sendable {
    /// What failed.
    enum Operation: String, Sendable {
        case append, sync, commit
    }

    let operation: Operation
    /// The `errno` of the failed call; a fault with another errno is a new fault.
    let errno: Int32?
    /// Why, as clients are told ("the disk is full (0 B free on /data/orders/0): write to …").
    var reason: String
    /// Monotonic milliseconds of the first failure.
    let since: Int64
    /// Failures since the first (refused produces, failed syncs or commits).
    var failures: Int
}

/// The faults in force, one per subject at most, so that each is logged once when it begins and
/// once when writes resume, however many requests it refuses in between (a producer retrying on
/// a full disk sends a batch every few seconds for minutes).
///
/// Not thread-safe: owned by the broker's thread.
struct WriteFaults {
    private var faults: [SyncKey.Subject: WriteFault] = [:]

    /// The fault of `subject` in force, if any.
    subscript(subject: SyncKey.Subject) -> WriteFault? { faults[subject] }

    /// Records that `operation` on `subject` failed with `error`; logs at error, with `metadata`
    /// (topic, partition, path) and what the failure `affects`, when this is a new fault (none
    /// in force, or one of another operation or errno), and at debug otherwise.
    mutating func failed(_ subject: SyncKey.Subject, _ operation: WriteFault.Operation, _ error: StorageError, affects: String,
                         now: Int64, metadata: Logger.Metadata, logger: Logger) {
        if var fault = faults[subject], fault.operation == operation, fault.errno == error.errno {
            fault.failures += 1
            fault.reason = error.message
            faults[subject] = fault
            logger.debug("write refused again", metadata: metadata.merging(["error": "\(error.message)", "failures": "\(fault.failures)"]) { $1 })
            return
        }
        faults[subject] = WriteFault(operation: operation, errno: error.errno, reason: error.message, since: now, failures: 1)
        let what = error.diskFault.map { "\($0)" } ?? "a storage call failed"
        logger.error("\(what): \(affects)", metadata: metadata.merging([
            "operation": "\(operation.rawValue)", "error": "\(error.message)",
        ]) { $1 })
    }

    /// Records that `operation` on `subject` worked; if it ends a fault of that operation, logs
    /// at notice how long it lasted and how many failures it caused.
    mutating func succeeded(_ subject: SyncKey.Subject, _ operation: WriteFault.Operation, now: Int64,
                            metadata: @autoclosure () -> Logger.Metadata, logger: Logger) {
        // Every append and sync ends here: without a fault in force, not even a hash of the key.
        guard !faults.isEmpty, let fault = faults[subject], fault.operation == operation else { return }
        faults[subject] = nil
        logger.notice("writes resumed", metadata: metadata().merging([
            "operation": "\(operation.rawValue)", "failures": "\(fault.failures)", "afterMilliseconds": "\(now - fault.since)",
        ]) { $1 })
    }

    /// Forgets `subject` (a deleted topic's partition).
    mutating func remove(_ subject: SyncKey.Subject) {
        faults[subject] = nil
    }
}
