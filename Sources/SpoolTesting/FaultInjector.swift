import Glibc
@_spi(Testing) import SpoolStorage
import Synchronization

/// A ``FileIO`` that counts calls and fails the ones it is told to (NATS `mockWriteErr`), or
/// slows syncs down like a busy disk: the storage and broker tests' stand-in for a disk that
/// fills up, fails a write, or fails a sync. (The end-to-end tests use real full filesystems.)
@_spi(Testing) public final class FaultInjector: Sendable {
    private struct State {
        var writes = 0
        var syncs = 0
        var truncates = 0
        /// Write call number (counted from 1) that fails, after writing `partialBytes` of it.
        var failingWrite: (number: Int, partialBytes: Int, errno: Int32)?
        var failNextWrite: Int32?
        /// While set, every write fails with this errno (a full disk until space is freed).
        var failingAllWrites: Int32?
        var failingSync: (number: Int, errno: Int32)?
        var failTruncates = false
        var syncDelay: Duration = .zero
    }

    private let state = Mutex(State())
    /// errno of an injected write failure unless another is given.
    public static let writeError = ENOSPC
    /// errno of an injected sync failure unless another is given.
    public static let syncError = EIO

    /// A seam that fails nothing until told to.
    public init() {}

    /// Makes the `number`-th write from now fail with `errno`: it first writes `partialBytes`
    /// (never the whole write: at most all but its last byte, so it is always a short write),
    /// and the call that would continue it fails.
    public func failWrite(number: Int, partialBytes: Int = 0, errno: Int32 = FaultInjector.writeError) {
        state.withLock { $0.failingWrite = ($0.writes + number, partialBytes, errno) }
    }

    /// Makes every write fail with `errno` from now on (a disk that is full, read-only, past a
    /// quota), or, with nil, none any more (space was freed).
    public func failAllWrites(_ errno: Int32?) {
        state.withLock { $0.failingAllWrites = errno }
    }

    /// Makes the `number`-th fdatasync/fsync from now fail with `errno`.
    public func failSync(number: Int, errno: Int32 = FaultInjector.syncError) {
        state.withLock { $0.failingSync = ($0.syncs + number, errno) }
    }

    /// Makes every ftruncate fail (so a failed write's rollback fails too).
    public func failTruncates(_ fail: Bool) {
        state.withLock { $0.failTruncates = fail }
    }

    /// Makes every sync take `delay` longer.
    public func delaySyncs(by delay: Duration) {
        state.withLock { $0.syncDelay = delay }
    }

    /// fdatasync and fsync calls so far.
    public var syncCount: Int { state.withLock { $0.syncs } }

    /// pwritev calls so far.
    public var writeCount: Int { state.withLock { $0.writes } }

    /// The seam to hand to a log, an offset store, a data directory or a broker.
    public var io: FileIO {
        FileIO(
            pwritev: { [self] descriptor, vectors, count, offset in
                enum Action { case pass, fail(Int32), partial(Int) }
                let action: Action = state.withLock { state in
                    state.writes += 1
                    if let failing = state.failingAllWrites { return .fail(failing) }
                    if let failing = state.failNextWrite {
                        state.failNextWrite = nil
                        return .fail(failing)
                    }
                    guard let failing = state.failingWrite, failing.number == state.writes else { return .pass }
                    state.failingWrite = nil
                    guard failing.partialBytes > 0 else { return .fail(failing.errno) }
                    state.failNextWrite = failing.errno
                    return .partial(failing.partialBytes)
                }
                switch action {
                case .pass:
                    return Glibc.pwritev(descriptor, vectors, count, offset)
                case .fail(let failing):
                    errno = failing
                    return -1
                case .partial(let limit):
                    return Self.writePrefix(descriptor, vectors, count, offset, limit: limit)
                }
            },
            fdatasync: { [self] descriptor in sync(descriptor, Glibc.fdatasync) },
            fsync: { [self] descriptor in sync(descriptor, Glibc.fsync) },
            ftruncate: { [self] descriptor, length in
                let fail = state.withLock { state in
                    state.truncates += 1
                    return state.failTruncates
                }
                if fail {
                    errno = EIO
                    return -1
                }
                return Glibc.ftruncate(descriptor, length)
            }
        )
    }

    private func sync(_ descriptor: Int32, _ call: (Int32) -> Int32) -> Int32 {
        let (fail, delay) = state.withLock { state -> (Int32?, Duration) in
            state.syncs += 1
            guard let failing = state.failingSync, failing.number == state.syncs else { return (nil, state.syncDelay) }
            state.failingSync = nil
            return (failing.errno, state.syncDelay)
        }
        if delay > .zero {
            let (seconds, attoseconds) = delay.components
            var time = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
            nanosleep(&time, nil)
        }
        if let fail {
            errno = fail
            return -1
        }
        return call(descriptor)
    }

    /// Really writes only the first `limit` bytes of the vectors: a short write.
    private static func writePrefix(_ descriptor: Int32, _ vectors: UnsafePointer<iovec>, _ count: Int32, _ offset: off_t, limit: Int) -> Int {
        let buffers = UnsafeBufferPointer(start: vectors, count: Int(count))
        var trimmed: [iovec] = []
        var left = min(limit, buffers.reduce(0) { $0 + $1.iov_len } - 1)
        for vector in buffers where left > 0 {
            trimmed.append(iovec(iov_base: vector.iov_base, iov_len: min(left, vector.iov_len)))
            left -= min(left, vector.iov_len)
        }
        return Glibc.pwritev(descriptor, trimmed, Int32(trimmed.count), offset)
    }
}
