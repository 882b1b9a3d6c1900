import CZeroMQ
import Glibc

/// An error from a libzmq call (or from `eventfd(2)` behind `WakeupSignal`); the error of every
/// socket and context call (key files have their own, ``KeyFileError``).
public struct ZeroMQError: Error, Sendable, CustomStringConvertible {
    /// The error number, read right after the failing call (`zmq_errno()` or `errno`).
    public let errno: Int32
    /// The call that failed with its main argument, e.g. `zmq_bind(tcp://127.0.0.1:7070)`.
    public let operation: String

    init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    /// The human-readable text libzmq gives for `errno` (`zmq_strerror`).
    public var message: String { String(cString: zmq_strerror(errno)) }

    /// True when the socket's context is shutting down (`ETERM`); the socket should be closed.
    public var isTerminated: Bool { errno == ETERM }

    /// True when a `ROUTER` with `setRouterMandatory(true)` sent to a peer it does not know
    /// (never connected, or gone) (`EHOSTUNREACH`).
    public var isHostUnreachable: Bool { errno == EHOSTUNREACH }

    /// One line: `<operation>: <message>`.
    public var description: String { "\(operation): \(message)" }
}
