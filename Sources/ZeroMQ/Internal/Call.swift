import CZeroMQ
import Glibc

/// The one place that interprets return codes of libzmq and POSIX calls
/// (the pattern of swift-nio's `syscall(blocking:where:_:)`).
///
/// On failure the error number is read immediately after the call, `EINTR` is retried
/// (except where noted), `EAGAIN` becomes a value, and everything else a `ZeroMQError`.
/// `operation` is an autoclosure so the error text costs nothing on success.
enum Call {
    private enum Outcome<Value> {
        case completed(Value)
        case wouldBlock
        case interrupted
    }

    /// A libzmq call returning `int`; `EAGAIN` is an error like any other.
    @discardableResult
    static func zmq(
        _ operation: @autoclosure () -> String,
        _ body: () -> Int32
    ) throws(ZeroMQError) -> Int32 {
        switch try run(operation, readErrno: zmq_errno, retryingInterrupts: true, body) {
        case .completed(let value): return value
        case .wouldBlock, .interrupted: throw ZeroMQError(errno: EAGAIN, operation: operation())
        }
    }

    /// A libzmq call returning `int`; `nil` when it would block (`EAGAIN`).
    static func zmqUnlessWouldBlock(
        _ operation: @autoclosure () -> String,
        _ body: () -> Int32
    ) throws(ZeroMQError) -> Int32? {
        switch try run(operation, readErrno: zmq_errno, retryingInterrupts: true, body) {
        case .completed(let value): return value
        case .wouldBlock, .interrupted: return nil
        }
    }

    /// A libzmq call returning `int` that must not be restarted (`zmq_poll`, whose timeout
    /// would start again); `nil` when interrupted by a signal.
    static func zmqUnlessInterrupted(
        _ operation: @autoclosure () -> String,
        _ body: () -> Int32
    ) throws(ZeroMQError) -> Int32? {
        switch try run(operation, readErrno: zmq_errno, retryingInterrupts: false, body) {
        case .completed(let value): return value
        case .interrupted: return nil
        case .wouldBlock: throw ZeroMQError(errno: EAGAIN, operation: operation())
        }
    }

    /// A libzmq call returning a pointer that is `NULL` on failure.
    static func zmqPointer<Pointer>(
        _ operation: @autoclosure () -> String,
        _ body: () -> Pointer?
    ) throws(ZeroMQError) -> Pointer {
        guard let pointer = body() else {
            throw ZeroMQError(errno: zmq_errno(), operation: operation())
        }
        return pointer
    }

    /// A libzmq call that fails only on a bug (an invalid message or context) or when memory
    /// is exhausted, where Swift itself would trap too; traps with the error text.
    static func zmqInfallible(_ operation: @autoclosure () -> String, _ body: () -> Int32) {
        do {
            try zmq(operation(), body)
        } catch {
            preconditionFailure(error.description)
        }
    }

    /// A POSIX call returning -1 and setting `errno` on failure; `EAGAIN` is an error.
    static func posix<Result: BinaryInteger>(
        _ operation: @autoclosure () -> String,
        _ body: () -> Result
    ) throws(ZeroMQError) -> Result {
        switch try run(operation, readErrno: { Glibc.errno }, retryingInterrupts: true, body) {
        case .completed(let value): return value
        case .wouldBlock, .interrupted: throw ZeroMQError(errno: EAGAIN, operation: operation())
        }
    }

    /// A POSIX call returning -1 and setting `errno` on failure; `nil` when it would block.
    static func posixUnlessWouldBlock<Result: BinaryInteger>(
        _ operation: @autoclosure () -> String,
        _ body: () -> Result
    ) throws(ZeroMQError) -> Result? {
        switch try run(operation, readErrno: { Glibc.errno }, retryingInterrupts: true, body) {
        case .completed(let value): return value
        case .wouldBlock, .interrupted: return nil
        }
    }

    private static func run<Result: BinaryInteger>(
        _ operation: () -> String,
        readErrno: () -> Int32,
        retryingInterrupts: Bool,
        _ body: () -> Result
    ) throws(ZeroMQError) -> Outcome<Result> {
        while true {
            let result = body()
            if result >= 0 { return .completed(result) }
            let code = readErrno()
            switch code {
            case EINTR where retryingInterrupts: continue
            case EINTR: return .interrupted
            case EAGAIN: return .wouldBlock
            default: throw ZeroMQError(errno: code, operation: operation())
            }
        }
    }
}
