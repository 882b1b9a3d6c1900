import CZeroMQ
import Glibc

/// A pollable wake-up signal over `eventfd(2)`: any thread may `signal()`; the owning thread
/// polls `fileDescriptor` (readable while signalled) and calls `drain()`. Signals coalesce.
public final class WakeupSignal: @unchecked Sendable {
    // @unchecked Sendable: the descriptor is set once; write(2) and read(2) on an eventfd are
    // atomic, thread-safe syscalls.

    /// The eventfd, open for the signal's lifetime; add it to a `Poller`.
    public let fileDescriptor: Int32

    /// Opens a non-blocking eventfd. Throws (operation `eventfd`) when out of descriptors.
    public init() throws(ZeroMQError) {
        let flags = Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC)
        fileDescriptor = try Call.posix("eventfd") { eventfd(0, flags) }
    }

    deinit {
        // Not retried on EINTR: Linux frees the descriptor even then.
        close(fileDescriptor)
    }

    /// Makes `fileDescriptor` readable until the next `drain()`. Never blocks.
    public func signal() {
        var one: UInt64 = 1
        // Would-block means the counter is saturated, i.e. already signalled; nothing to do.
        _ = try? Call.posixUnlessWouldBlock("write(eventfd)", { write(fileDescriptor, &one, 8) })
    }

    /// Clears all pending signals. Never blocks.
    public func drain() {
        var count: UInt64 = 0
        // Would-block means nothing was pending.
        _ = try? Call.posixUnlessWouldBlock("read(eventfd)", { read(fileDescriptor, &count, 8) })
    }
}
