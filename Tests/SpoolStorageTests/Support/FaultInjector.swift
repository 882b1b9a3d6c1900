import Glibc
@_spi(Testing) import SpoolStorage
import Synchronization

/// A ``FileIO`` that counts calls and fails the ones it is told to (NATS `mockWriteErr`), or
/// slows syncs down like a busy disk.
final class FaultInjector: Sendable {
    private struct State {
        var writes = 0
        var syncs = 0
        var truncates = 0
        /// Write call number (counted from 1) that fails, after writing `partialBytes` of it.
        var failingWrite: (number: Int, partialBytes: Int)?
        var failNextWrite = false
        var failingSync: Int?
        var failTruncates = false
        var syncDelay: Duration = .zero
    }

    private let state = Mutex(State())
    /// errno of an injected write failure.
    static let writeError = ENOSPC
    /// errno of an injected sync failure.
    static let syncError = EIO

    /// Makes the `number`-th write from now fail with ENOSPC: it first writes `partialBytes` (a
    /// short write), and the call that would continue it fails.
    func failWrite(number: Int, partialBytes: Int = 0) {
        state.withLock { $0.failingWrite = ($0.writes + number, partialBytes) }
    }

    /// Makes the `number`-th fdatasync/fsync from now fail with EIO.
    func failSync(number: Int) {
        state.withLock { $0.failingSync = $0.syncs + number }
    }

    /// Makes every ftruncate fail (so a failed write's rollback fails too).
    func failTruncates(_ fail: Bool) {
        state.withLock { $0.failTruncates = fail }
    }

    /// Makes every sync take `delay` longer.
    func delaySyncs(by delay: Duration) {
        state.withLock { $0.syncDelay = delay }
    }

    var syncCount: Int { state.withLock { $0.syncs } }

    var io: FileIO {
        FileIO(
            pwritev: { [self] descriptor, vectors, count, offset in
                enum Action { case pass, fail, partial(Int) }
                let action: Action = state.withLock { state in
                    state.writes += 1
                    if state.failNextWrite {
                        state.failNextWrite = false
                        return .fail
                    }
                    guard let failing = state.failingWrite, failing.number == state.writes else { return .pass }
                    state.failingWrite = nil
                    guard failing.partialBytes > 0 else { return .fail }
                    state.failNextWrite = true
                    return .partial(failing.partialBytes)
                }
                switch action {
                case .pass:
                    return Glibc.pwritev(descriptor, vectors, count, offset)
                case .fail:
                    errno = Self.writeError
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
        let (fail, delay) = state.withLock { state in
            state.syncs += 1
            defer { if state.failingSync == state.syncs { state.failingSync = nil } }
            return (state.failingSync == state.syncs, state.syncDelay)
        }
        if delay > .zero {
            let (seconds, attoseconds) = delay.components
            var time = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
            nanosleep(&time, nil)
        }
        if fail {
            errno = Self.syncError
            return -1
        }
        return call(descriptor)
    }

    /// Really writes only the first `limit` bytes of the vectors: a short write.
    private static func writePrefix(_ descriptor: Int32, _ vectors: UnsafePointer<iovec>, _ count: Int32, _ offset: off_t, limit: Int) -> Int {
        var trimmed: [iovec] = []
        var left = limit
        for vector in UnsafeBufferPointer(start: vectors, count: Int(count)) where left > 0 {
            trimmed.append(iovec(iov_base: vector.iov_base, iov_len: min(left, vector.iov_len)))
            left -= min(left, vector.iov_len)
        }
        return Glibc.pwritev(descriptor, trimmed, Int32(trimmed.count), offset)
    }
}
