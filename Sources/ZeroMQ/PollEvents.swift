import CZeroMQ

/// What a `Poller` item waits for.
public struct PollEvents: OptionSet, Sendable {
    /// libzmq's `ZMQ_POLLIN`/`ZMQ_POLLOUT` bits.
    public let rawValue: Int16

    /// Creates events from libzmq's `ZMQ_POLL*` bits.
    public init(rawValue: Int16) {
        self.rawValue = rawValue
    }

    /// A message (or, for a descriptor, data) can be received without blocking.
    public static let readable = PollEvents(rawValue: CZMQ_POLLIN_SHORT)
    /// A message can be sent without blocking.
    public static let writable = PollEvents(rawValue: CZMQ_POLLOUT_SHORT)
}
