import CZeroMQ
import Synchronization

/// One frame of a message, owning a libzmq message. Immutable after creation.
///
/// Sending shares the bytes with libzmq by reference count (`zmq_msg_copy`) instead of handing
/// them over, so a frame stays valid after a send and can be sent again, to any socket.
public final class Frame: @unchecked Sendable {
    // @unchecked Sendable: `start` and `count` are captured at init and the bytes behind them
    // never change, so reads never touch the zmq_msg_t. The only writes to the zmq_msg_t are
    // zmq_msg_copy (it marks the source as shared; `shareLock` serializes it) and zmq_msg_close
    // in deinit, which runs once, when no thread holds the frame any more.
    private let message: UnsafeMutablePointer<zmq_msg_t>
    private let start: UnsafeRawPointer?
    private let shareLock = Mutex(())
    /// The number of bytes in the frame.
    public let count: Int

    /// Takes ownership of an initialized message from `Message.allocateEmpty()` or `allocate`.
    init(adopting message: UnsafeMutablePointer<zmq_msg_t>) {
        self.message = message
        start = UnsafeRawPointer(zmq_msg_data(message))
        count = zmq_msg_size(message)
    }

    /// A frame holding a copy of `bytes`.
    public convenience init(_ bytes: some Collection<UInt8>) {
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        Message.initialize(message, copying: bytes)
        self.init(adopting: message)
    }

    /// A frame holding a copy of the bytes in `buffer`.
    public convenience init(_ buffer: UnsafeRawBufferPointer) {
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        Message.initialize(message, copying: buffer)
        self.init(adopting: message)
    }

    /// A frame of up to `capacity` bytes written in place by `body`, which returns how many
    /// bytes it wrote (0...capacity; anything else traps). The frame holds exactly those bytes
    /// and sends no others. If `body` throws, nothing is leaked and the error is rethrown.
    public convenience init(
        capacity: Int,
        initializingWith body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) rethrows {
        precondition(capacity >= 0, "Frame capacity must not be negative")
        // Zero-copy: `body` writes into our own buffer and libzmq adopts it with the written
        // size (zmq_msg_init_data), freeing it when its last reference goes, on whichever thread
        // that is. The buffer may be larger than the frame; libzmq only sends `count` bytes.
        // (zmq_msg_init_size could not be shrunk afterwards and would need a second copy.)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(capacity, 1), alignment: 16)
        let written: Int
        do {
            written = try body(UnsafeMutableRawBufferPointer(rebasing: buffer[..<capacity]))
        } catch {
            buffer.deallocate()
            throw error
        }
        precondition((0...capacity).contains(written), "Frame body wrote \(written) of \(capacity) bytes")
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        Call.zmqInfallible("zmq_msg_init_data(\(written))") {
            zmq_msg_init_data(message, buffer.baseAddress, written, { data, _ in data?.deallocate() }, nil)
        }
        self.init(adopting: message)
    }

    deinit {
        Message.release(message)
    }

    /// Calls `body` with the frame's bytes, valid only during the call.
    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try body(UnsafeRawBufferPointer(start: start, count: count))
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// A metadata property of a received frame (`zmq_msg_gets`), such as `"User-Id"` (set by
    /// authentication), `"Peer-Address"` or `"Socket-Type"`; nil if the frame has none.
    public func property(_ name: String) -> String? {
        guard let value = try? Call.zmqPointer("zmq_msg_gets(\(name))", { zmq_msg_gets(message, name) }) else {
            return nil
        }
        return String(cString: value)
    }

    /// Initializes `destination` (uninitialized or closed) as a reference to this frame's bytes.
    func share(into destination: UnsafeMutablePointer<zmq_msg_t>) {
        Message.initializeEmpty(destination)
        shareLock.withLock { _ in
            Call.zmqInfallible("zmq_msg_copy") { zmq_msg_copy(destination, message) }
        }
    }
}
