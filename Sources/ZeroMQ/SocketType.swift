import CZeroMQ

/// The ZeroMQ socket pattern of a `Socket`.
public struct SocketType: Sendable, Hashable, CustomStringConvertible {
    let rawValue: Int32
    /// The libzmq name, e.g. `ROUTER`.
    public let description: String

    /// Routes by the routing id in the first frame; receives it prefixed to each message.
    public static let router = SocketType(rawValue: ZMQ_ROUTER, description: "ROUTER")
    /// Load-balances sends over its peers and fair-queues receives; no envelope.
    public static let dealer = SocketType(rawValue: ZMQ_DEALER, description: "DEALER")
    /// Exactly one peer, both directions.
    public static let pair = SocketType(rawValue: ZMQ_PAIR, description: "PAIR")
    /// Strict receive-then-reply server side.
    public static let rep = SocketType(rawValue: ZMQ_REP, description: "REP")
    /// Strict send-then-receive client side.
    public static let req = SocketType(rawValue: ZMQ_REQ, description: "REQ")
    /// Sends to every matching subscriber; drops when a subscriber is full.
    public static let pub = SocketType(rawValue: ZMQ_PUB, description: "PUB")
    /// Receives the messages whose first frame starts with a subscribed prefix.
    public static let sub = SocketType(rawValue: ZMQ_SUB, description: "SUB")
    /// Load-balances sends; cannot receive.
    public static let push = SocketType(rawValue: ZMQ_PUSH, description: "PUSH")
    /// Fair-queues receives; cannot send.
    public static let pull = SocketType(rawValue: ZMQ_PULL, description: "PULL")
}
