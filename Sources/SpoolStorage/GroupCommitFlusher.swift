import Foundation
import Metrics
import Glibc

/// Group commit: one background thread runs ``SyncWork`` in rounds, so one fdatasync covers every
/// append that arrived while the previous one ran.
///
/// Invariants: ``submit(_:for:)`` never waits for the disk; every submit is covered by the round
/// after it (a round takes all work pending when it starts); a round syncs each distinct file
/// once, however many submits name it; for each key, reported end offsets only grow; once a
/// sync for a key failed, every later round reports that key failed (after a failed fdatasync,
/// Linux may drop the dirty pages, so no later sync can prove the earlier bytes durable; reopen
/// the partition, whose recovery finds what really is on disk, under a new key).
///
/// Thread-safe: any thread may submit; `onDurable` runs on the flusher thread.
public final class GroupCommitFlusher<Key: Hashable & Sendable>: Sendable {
    private struct State: Sendable {
        /// Work waiting for the next round, one merged entry per key.
        var pending: [Key: SyncWork] = [:]
        var roundCount = 0
        var isStopping = false
        var isFinished = false
        var flusherThread: pthread_t?
    }

    private let state = ConditionLock(State())
    private let onDurable: @Sendable ([(key: Key, result: Result<Int64, StorageError>)]) -> Void

    /// Starts the flusher thread. `onDurable` is called on it after each round with every key the
    /// round covered: `.success(endOffset)` when everything below `endOffset` is durable, or the
    /// error when a sync failed (then that key's bytes are not durable and its waiting producers
    /// must get errors).
    public init(onDurable: @escaping @Sendable ([(key: Key, result: Result<Int64, StorageError>)]) -> Void) {
        self.onDurable = onDurable
        let thread = Thread { [state, onDurable] in Self.run(state: state, onDurable: onDurable) }
        thread.name = "spool-group-commit"
        thread.start()
    }

    deinit { shutdown() }

    /// Queues `work` for the next round. Never blocks on the disk. After ``shutdown()``, calls
    /// `onDurable` at once, on the caller's thread, with ``StorageError/Code/closed`` for `key`.
    public func submit(_ work: SyncWork, for key: Key) {
        let accepted = state.withLock { state in
            guard !state.isStopping else { return false }
            state.pending[key] = state.pending[key].map { $0.merged(with: work) } ?? work
            return true
        }
        if !accepted {
            onDurable([(key, .failure(StorageError(.closed, "the group-commit flusher is shut down")))])
        }
    }

    /// Runs the rounds still pending, then stops the thread; returns when it has stopped (at once
    /// when called from `onDurable`). Idempotent.
    public func shutdown() {
        let isFlusherThread = state.withLock { state in
            state.isStopping = true
            return state.flusherThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        }
        if !isFlusherThread {
            state.wait(until: { $0.isFinished }, then: { _ in })
        }
    }

    /// Rounds run so far (each round is one pass of syncs over the pending files).
    public var roundCount: Int { state.withLock { $0.roundCount } }

    private static func run(state: ConditionLock<State>, onDurable: ([(key: Key, result: Result<Int64, StorageError>)]) -> Void) {
        state.withLock { $0.flusherThread = pthread_self() }
        // Each successful sync's duration (`spool_fsync_duration_seconds`).
        let syncTimer = Metrics.Timer(label: "spool_fsync_duration_seconds")
        var failures: [Key: StorageError] = [:]
        while true {
            let round: [Key: SyncWork]? = state.wait(until: { !$0.pending.isEmpty || $0.isStopping }) { state in
                guard !state.pending.isEmpty else { return nil }
                defer { state.pending = [:] }
                return state.pending
            }
            guard let round else { break }
            var errors: [ObjectIdentifier: StorageError] = [:]
            var synced: Set<ObjectIdentifier> = []
            for file in round.values.flatMap(\.files) where synced.insert(ObjectIdentifier(file)).inserted {
                do throws(StorageError) {
                    let started = DispatchTime.now().uptimeNanoseconds
                    try file.sync()
                    syncTimer.recordNanoseconds(Int64(clamping: DispatchTime.now().uptimeNanoseconds - started))
                } catch {
                    errors[ObjectIdentifier(file)] = error
                }
            }
            let results = round.map { key, work -> (key: Key, result: Result<Int64, StorageError>) in
                if let error = failures[key] ?? work.files.lazy.compactMap({ errors[ObjectIdentifier($0)] }).first {
                    failures[key] = error
                    return (key, .failure(error))
                }
                return (key, .success(work.endOffset))
            }
            state.withLock { $0.roundCount += 1 }
            onDurable(results)
        }
        state.withLock { $0.isFinished = true }
    }
}
