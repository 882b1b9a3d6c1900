import CZeroMQ

/// One event from a socket monitor: what happened to which endpoint.
public struct MonitorEvent: Sendable {
    /// What happened.
    public let kind: Kind
    /// The event's value: an errno for failures, a descriptor for connected/accepted/closed,
    /// the retry interval in ms for `connectRetried`, a ZAP status code for `handshakeFailedAuth`.
    public let value: Int32
    /// The endpoint concerned, e.g. `tcp://127.0.0.1:7070`.
    public let endpoint: String

    /// An event kind (libzmq's `ZMQ_EVENT_*`). An open set: kinds libzmq may add later arrive
    /// as `Kind(rawValue:)` with their raw number.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        /// The `ZMQ_EVENT_*` number.
        public let rawValue: UInt16

        /// The kind with libzmq number `rawValue`.
        public init(rawValue: UInt16) {
            self.rawValue = rawValue
        }

        private init(_ event: Int32) {
            rawValue = UInt16(event)
        }

        /// A connection to a peer is established (handshake not yet done).
        public static let connected = Kind(ZMQ_EVENT_CONNECTED)
        /// A connect is in progress (asynchronous).
        public static let connectDelayed = Kind(ZMQ_EVENT_CONNECT_DELAYED)
        /// A reconnect is scheduled after a failed or lost connection; value is the delay in ms.
        public static let connectRetried = Kind(ZMQ_EVENT_CONNECT_RETRIED)
        /// A bind is listening.
        public static let listening = Kind(ZMQ_EVENT_LISTENING)
        /// A bind failed; value is the errno.
        public static let bindFailed = Kind(ZMQ_EVENT_BIND_FAILED)
        /// A bound socket accepted a connection.
        public static let accepted = Kind(ZMQ_EVENT_ACCEPTED)
        /// A bound socket failed to accept a connection; value is the errno.
        public static let acceptFailed = Kind(ZMQ_EVENT_ACCEPT_FAILED)
        /// A connection's descriptor was closed.
        public static let closed = Kind(ZMQ_EVENT_CLOSED)
        /// Closing a descriptor failed; value is the errno.
        public static let closeFailed = Kind(ZMQ_EVENT_CLOSE_FAILED)
        /// An established connection was lost.
        public static let disconnected = Kind(ZMQ_EVENT_DISCONNECTED)
        /// Monitoring ended (the socket closed or monitoring was restarted); no more events.
        public static let monitorStopped = Kind(ZMQ_EVENT_MONITOR_STOPPED)
        /// The ZMTP handshake failed for a system reason; value is the errno.
        public static let handshakeFailedNoDetail = Kind(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        /// The ZMTP handshake (including authentication, if any) succeeded.
        public static let handshakeSucceeded = Kind(ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        /// The handshake failed on a protocol error; value is a `ZMQ_PROTOCOL_ERROR_*` code.
        public static let handshakeFailedProtocol = Kind(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        /// Authentication rejected the peer; value is the ZAP status code (300, 400 or 500).
        public static let handshakeFailedAuth = Kind(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

        private static let named: [(Kind, String)] = [
            (.connected, "connected"), (.connectDelayed, "connectDelayed"),
            (.connectRetried, "connectRetried"), (.listening, "listening"),
            (.bindFailed, "bindFailed"), (.accepted, "accepted"), (.acceptFailed, "acceptFailed"),
            (.closed, "closed"), (.closeFailed, "closeFailed"), (.disconnected, "disconnected"),
            (.monitorStopped, "monitorStopped"), (.handshakeFailedNoDetail, "handshakeFailedNoDetail"),
            (.handshakeSucceeded, "handshakeSucceeded"), (.handshakeFailedProtocol, "handshakeFailedProtocol"),
            (.handshakeFailedAuth, "handshakeFailedAuth"),
        ]

        /// Every kind named above: the default for `Socket.monitor(events:)`.
        public static let all = Set(named.map(\.0))

        /// The kind's name, e.g. `connectRetried`, or `event(0x…)` for an unnamed kind.
        public var description: String {
            Self.named.first { $0.0 == self }?.1 ?? "event(0x\(String(rawValue, radix: 16)))"
        }
    }
}
