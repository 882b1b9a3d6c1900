import Glibc

/// The receiving end of a socket monitor (see `Socket.monitor(events:)`). Like `Socket`, use it
/// from one thread at a time.
public final class MonitorSocket {
    /// The `PAIR` socket the events arrive on; add it to a `Poller` to wait for events.
    public let socket: Socket

    init(socket: Socket) {
        self.socket = socket
    }

    /// Receives the next event; nil only when `dontWait` is true and none is ready.
    /// Throws `EPROTO` if the message is not a libzmq monitor event.
    public func receiveEvent(dontWait: Bool = false) throws(ZeroMQError) -> MonitorEvent? {
        guard let frames = try socket.receive(dontWait: dontWait) else { return nil }
        // Layout (libzmq 4.x, version 1): frame 0 is the event number (uint16) followed by the
        // value (uint32), native byte order; frame 1 is the endpoint.
        guard frames.count == 2, frames[0].count == 6 else {
            throw ZeroMQError(errno: EPROTO, operation: "monitor event of \(frames.count) frames")
        }
        let (event, value) = frames[0].withUnsafeBytes {
            ($0.loadUnaligned(as: UInt16.self), $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        }
        return MonitorEvent(
            kind: MonitorEvent.Kind(rawValue: event),
            value: Int32(bitPattern: value),
            endpoint: String(decoding: frames[1].bytes, as: UTF8.self)
        )
    }
}
