import CZeroMQ
import Synchronization

/// Numbers the monitor endpoints, which must be unique within a context.
private let monitorCounter = Atomic<Int>(0)

extension Socket {
    /// Starts monitoring this socket for `events` and returns the socket the events arrive on,
    /// already connected (over a private `inproc://` endpoint). Both belong to the calling
    /// thread. Start it before `connect`/`bind` to see every event. Calling it again stops the
    /// previous monitor, whose socket then receives `monitorStopped`.
    public func monitor(events: Set<MonitorEvent.Kind> = MonitorEvent.Kind.all) throws(ZeroMQError) -> MonitorSocket {
        let endpoint = "inproc://spool.zeromq.monitor.\(monitorCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
        let mask = events.reduce(Int32(0)) { $0 | Int32($1.rawValue) }
        try Call.zmq("zmq_socket_monitor(\(endpoint))") { zmq_socket_monitor(handle, endpoint, mask) }
        let receiver = try Socket(context: context, type: .pair)
        try receiver.connect(endpoint)
        return MonitorSocket(socket: receiver)
    }

    /// Stops the monitor started by `monitor(events:)`. Call it before the `MonitorSocket` goes
    /// away: libzmq's I/O thread sends each event with a blocking send, so an event for a
    /// monitor whose receiving socket is closed blocks that thread, and with it every socket of
    /// the context, forever (libzmq issue 3575).
    public func stopMonitor() throws(ZeroMQError) {
        try Call.zmq("zmq_socket_monitor(nil)") { zmq_socket_monitor(handle, nil, 0) }
    }
}
