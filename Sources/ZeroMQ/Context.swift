import CZeroMQ

/// A libzmq context: the I/O threads and the namespace of `inproc://` endpoints.
/// Thread-safe. Every `Socket` keeps its context alive, so a context is terminated only after
/// its last socket is closed.
public final class Context: @unchecked Sendable {
    // @unchecked Sendable: the only state is the context handle, set once in init, and libzmq
    // documents every zmq_ctx_* function as thread-safe.
    let handle: UnsafeMutableRawPointer

    /// The process-wide context, created on first use; `inproc://` endpoints connect the SDK to
    /// an in-process broker only through the same context. Traps on first use if libzmq cannot
    /// create a context, which happens only when the process is out of file descriptors.
    public static let shared: Context = {
        do {
            return try Context()
        } catch {
            preconditionFailure("cannot create the shared ZeroMQ context: \(error)")
        }
    }()

    /// Creates a context with `ioThreads` I/O threads (0 is enough for `inproc://` only).
    /// Throws if libzmq cannot create it or rejects the thread count.
    public init(ioThreads: Int = 1) throws(ZeroMQError) {
        let handle = try Call.zmqPointer("zmq_ctx_new") { zmq_ctx_new() }
        do {
            try Call.zmq("zmq_ctx_set(ZMQ_IO_THREADS, \(ioThreads))") {
                zmq_ctx_set(handle, ZMQ_IO_THREADS, Int32(clamping: ioThreads))
            }
        } catch {
            Call.zmqInfallible("zmq_ctx_term") { zmq_ctx_term(handle) }
            throw error
        }
        self.handle = handle
    }

    /// Shuts the context down: every blocking call on its sockets, now or later, fails with
    /// `isTerminated`, and no new socket can be created. Idempotent; safe from any thread.
    /// Shutting down `shared` affects the whole process.
    public func shutdown() {
        Call.zmqInfallible("zmq_ctx_shutdown") { zmq_ctx_shutdown(handle) }
    }

    deinit {
        // No socket is open any more (each holds a reference), so this does not block.
        Call.zmqInfallible("zmq_ctx_term") { zmq_ctx_term(handle) }
    }
}
