import CZeroMQ

/// `zmq_poll` over sockets and plain file descriptors. Build it once, then poll many times:
/// polling reuses the item array and allocates nothing. Not `Sendable`: it holds sockets.
public struct Poller {
    private var items: [zmq_pollitem_t] = []
    /// Keeps every polled socket alive while its handle is in `items`.
    private var sockets: [Socket] = []

    /// An empty poller.
    public init() {}

    /// Adds `socket`, waiting for `events`; returns its index for `isReadable`/`isWritable`.
    public mutating func add(_ socket: Socket, events: PollEvents = .readable) -> Int {
        sockets.append(socket)
        items.append(zmq_pollitem_t(socket: socket.handle, fd: -1, events: events.rawValue, revents: 0))
        return items.count - 1
    }

    /// Adds a file descriptor (e.g. `WakeupSignal.fileDescriptor`), waiting for `events`;
    /// returns its index. The descriptor must stay open while it is polled.
    public mutating func add(fileDescriptor: Int32, events: PollEvents = .readable) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fileDescriptor, events: events.rawValue, revents: 0))
        return items.count - 1
    }

    /// Waits until an item is ready or `timeoutMilliseconds` pass (nil waits forever, 0 only
    /// checks). Returns how many items are ready; 0 on timeout or when a signal interrupted the
    /// wait. Throws `isTerminated` if the context of a polled socket is shut down.
    public mutating func poll(timeoutMilliseconds: Int?) throws(ZeroMQError) -> Int {
        let timeout = timeoutMilliseconds ?? -1
        let count = Int32(items.count)
        let ready = try Call.zmqUnlessInterrupted("zmq_poll") {
            items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, count, timeout) }
        }
        guard let ready else {
            for index in items.indices { items[index].revents = 0 }
            return 0
        }
        return Int(ready)
    }

    /// Whether item `index` was readable at the last poll.
    public func isReadable(_ index: Int) -> Bool {
        items[index].revents & PollEvents.readable.rawValue != 0
    }

    /// Whether item `index` was writable at the last poll.
    public func isWritable(_ index: Int) -> Bool {
        items[index].revents & PollEvents.writable.rawValue != 0
    }
}
