import CZeroMQ
import Glibc

/// One ZeroMQ socket. Not thread-safe: use it from one thread at a time (hence not `Sendable`).
/// Created with `ZMQ_LINGER` 0, so closing it (in deinit) and shutting its context down never
/// wait for unsent messages.
public final class Socket {
    let handle: UnsafeMutableRawPointer
    /// Kept alive as long as the socket: `zmq_ctx_term` waits for every socket to close.
    let context: Context
    /// Scratch message for sending; each outgoing frame is initialized into it, then sent.
    private let outgoing: UnsafeMutablePointer<zmq_msg_t>

    /// Opens a socket of `type` in `context`. Throws if the context is shut down
    /// (`isTerminated`) or the process is out of sockets.
    public init(context: Context = .shared, type: SocketType) throws(ZeroMQError) {
        handle = try Call.zmqPointer("zmq_socket(\(type))") { zmq_socket(context.handle, type.rawValue) }
        self.context = context
        outgoing = .allocate(capacity: 1)
        try setLinger(milliseconds: 0)
    }

    deinit {
        Call.zmqInfallible("zmq_close") { zmq_close(handle) }
        outgoing.deallocate()
    }

    /// Accepts connections on `endpoint` (`tcp://host:port`, `tcp://host:*`, `inproc://name`,
    /// `ipc://path`). Throws e.g. `EADDRINUSE`, or `EINVAL` for a malformed endpoint.
    public func bind(_ endpoint: String) throws(ZeroMQError) {
        try Call.zmq("zmq_bind(\(endpoint))") { zmq_bind(handle, endpoint) }
    }

    /// Connects to `endpoint`; libzmq connects (and reconnects) in the background, so this
    /// succeeds before any peer exists. Throws for a malformed endpoint.
    public func connect(_ endpoint: String) throws(ZeroMQError) {
        try Call.zmq("zmq_connect(\(endpoint))") { zmq_connect(handle, endpoint) }
    }

    /// Undoes `connect(_:)` for exactly that endpoint string; throws `ENOENT` if not connected.
    public func disconnect(_ endpoint: String) throws(ZeroMQError) {
        try Call.zmq("zmq_disconnect(\(endpoint))") { zmq_disconnect(handle, endpoint) }
    }

    /// Undoes `bind(_:)`; pass the resolved endpoint (`lastEndpoint`) for a wildcard bind.
    /// Throws `ENOENT` if not bound there.
    public func unbind(_ endpoint: String) throws(ZeroMQError) {
        try Call.zmq("zmq_unbind(\(endpoint))") { zmq_unbind(handle, endpoint) }
    }

    /// The endpoint of the last successful bind or connect, with wildcards resolved
    /// (`tcp://127.0.0.1:*` becomes `tcp://127.0.0.1:41234`); empty if none.
    public var lastEndpoint: String {
        get throws(ZeroMQError) { try stringOption(.lastEndpoint) }
    }

    /// Sends `frames` as one multipart message: peers get all frames or none.
    /// Returns false, having sent nothing, only when `dontWait` is true and the message would
    /// block (no peer, or the high-water mark is reached). Frames are not consumed: the
    /// message shares their bytes by reference count, so a frame may be sent again.
    /// Throws `EINVAL` for an empty array.
    @discardableResult
    public func send(_ frames: [Frame], dontWait: Bool = false) throws(ZeroMQError) -> Bool {
        try sendMessage(parts: frames.count, dontWait: dontWait) { index, message in
            frames[index].share(into: message)
        }
    }

    /// Like `send(_:dontWait:)` with frames, copying each byte array into a frame.
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws(ZeroMQError) -> Bool {
        try sendMessage(parts: frames.count, dontWait: dontWait) { index, message in
            Message.initialize(message, copying: frames[index])
        }
    }

    /// Receives one whole multipart message, all its frames in order. Returns nil only when
    /// `dontWait` is true and no message is ready. Retries `EINTR`; throws `isTerminated`
    /// when the context is shut down.
    public func receive(dontWait: Bool = false) throws(ZeroMQError) -> [Frame]? {
        var frames: [Frame] = []
        frames.reserveCapacity(4)  // requests and replies have 2 to 4 frames
        while true {
            let message = Message.allocateEmpty()
            do {
                if frames.isEmpty {
                    // Only the first frame can be missing; the rest of a message arrives with it.
                    let flags = dontWait ? ZMQ_DONTWAIT : 0
                    guard try Call.zmqUnlessWouldBlock("zmq_msg_recv", { zmq_msg_recv(message, handle, flags) }) != nil
                    else {
                        Message.release(message)
                        return nil
                    }
                } else {
                    try Call.zmq("zmq_msg_recv") { zmq_msg_recv(message, handle, 0) }
                }
            } catch {
                Message.release(message)
                throw error
            }
            let more = zmq_msg_more(message) != 0
            frames.append(Frame(adopting: message))
            if !more { return frames }
        }
    }

    /// Whether a whole message can be received right now without blocking (`ZMQ_EVENTS`),
    /// e.g. to drain a socket after a poll reported it readable.
    public var canReceive: Bool {
        get throws(ZeroMQError) { try int32Option(.events) & ZMQ_POLLIN != 0 }
    }

    /// Sends `parts` frames, each initialized into the scratch message by `prepare`.
    private func sendMessage(
        parts: Int,
        dontWait: Bool,
        prepare: (Int, UnsafeMutablePointer<zmq_msg_t>) -> Void
    ) throws(ZeroMQError) -> Bool {
        guard parts > 0 else { throw ZeroMQError(errno: EINVAL, operation: "zmq_msg_send(no frames)") }
        let dontWaitFlag = dontWait ? ZMQ_DONTWAIT : 0
        for index in 0..<parts {
            let flags = (index < parts - 1 ? ZMQ_SNDMORE : 0) | dontWaitFlag
            prepare(index, outgoing)
            // After a successful send libzmq leaves the scratch empty; after a failure it still
            // holds the frame. Closing covers both.
            defer { Message.close(outgoing) }
            if index == 0 {
                // Once the first frame is accepted, libzmq accepts the rest of the message.
                guard try Call.zmqUnlessWouldBlock("zmq_msg_send", { zmq_msg_send(outgoing, handle, flags) }) != nil
                else { return false }
            } else {
                try Call.zmq("zmq_msg_send") { zmq_msg_send(outgoing, handle, flags) }
            }
        }
        return true
    }
}
