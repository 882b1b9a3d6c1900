import CZeroMQ

/// Raw `zmq_msg_t` helpers shared by `Frame` and `Socket`.
///
/// A `zmq_msg_t` is 64 bytes and may hold its bytes inline, so it lives on the heap at a fixed
/// address for as long as anything points into it.
enum Message {
    /// Allocates and initializes an empty message; release it with `release(_:)`.
    static func allocateEmpty() -> UnsafeMutablePointer<zmq_msg_t> {
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        initializeEmpty(message)
        return message
    }

    /// Initializes `message` (uninitialized or closed memory) as an empty message.
    static func initializeEmpty(_ message: UnsafeMutablePointer<zmq_msg_t>) {
        Call.zmqInfallible("zmq_msg_init") { zmq_msg_init(message) }
    }

    /// Initializes `message` (uninitialized or closed memory) with a copy of `bytes`.
    static func initialize(_ message: UnsafeMutablePointer<zmq_msg_t>, copying bytes: some Collection<UInt8>) {
        let count = bytes.count
        Call.zmqInfallible("zmq_msg_init_size(\(count))") { zmq_msg_init_size(message, count) }
        let destination = UnsafeMutableRawBufferPointer(start: zmq_msg_data(message), count: count)
        let copied: Void? = bytes.withContiguousStorageIfAvailable {
            destination.copyMemory(from: UnsafeRawBufferPointer($0))
        }
        if copied == nil {
            destination.copyBytes(from: bytes)
        }
    }

    /// Closes `message`; the memory stays allocated and may be initialized again.
    static func close(_ message: UnsafeMutablePointer<zmq_msg_t>) {
        Call.zmqInfallible("zmq_msg_close") { zmq_msg_close(message) }
    }

    /// Closes and frees a message from `allocateEmpty()`.
    static func release(_ message: UnsafeMutablePointer<zmq_msg_t>) {
        close(message)
        message.deallocate()
    }
}
