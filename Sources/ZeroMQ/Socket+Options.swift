/// Socket options. Each setter throws `EINVAL` for a value libzmq rejects and `isTerminated`
/// after the context is shut down. Options affecting connections apply to later binds/connects.
extension Socket {
    /// How long closing the socket waits to flush unsent messages; -1 forever.
    /// Default here: 0 (libzmq's own default is -1).
    public func setLinger(milliseconds: Int32) throws(ZeroMQError) {
        try setOption(.linger, to: milliseconds)
    }

    /// Messages queued per peer for sending before sends block or drop (0 = unlimited).
    /// Default: 1000.
    public func setSendHighWaterMark(_ messages: Int32) throws(ZeroMQError) {
        try setOption(.sendHighWaterMark, to: messages)
    }

    /// Messages queued per peer on receipt before libzmq stops reading (0 = unlimited).
    /// Default: 1000.
    public func setReceiveHighWaterMark(_ messages: Int32) throws(ZeroMQError) {
        try setOption(.receiveHighWaterMark, to: messages)
    }

    /// On a `ROUTER`: sending to an unknown routing id throws `isHostUnreachable` instead of
    /// dropping silently, and a full peer blocks instead of dropping. Default: false.
    public func setRouterMandatory(_ on: Bool) throws(ZeroMQError) {
        try setOption(.routerMandatory, to: Int32(on ? 1 : 0))
    }

    /// Disconnects a peer that sends a frame larger than `bytes` (-1 = no limit). Default: -1.
    public func setMaxMessageSize(_ bytes: Int64) throws(ZeroMQError) {
        try setOption(.maxMessageSize, to: bytes)
    }

    /// The routing id a `ROUTER` peer sees for this socket: 1...255 bytes, not starting with 0.
    /// Default: a random id chosen by the `ROUTER`.
    public func setRoutingID(_ id: [UInt8]) throws(ZeroMQError) {
        try setOption(.routingID, to: id)
    }

    /// Queue messages only to completed connections, so sends block (or return false) until a
    /// peer is connected. Default: false.
    public func setImmediate(_ on: Bool) throws(ZeroMQError) {
        try setOption(.immediate, to: Int32(on ? 1 : 0))
    }

    /// The first reconnect delay, doubling up to `max` (0 = never grow). Default: 100 and 0.
    public func setReconnectInterval(milliseconds: Int32, max: Int32) throws(ZeroMQError) {
        try setOption(.reconnectInterval, to: milliseconds)
        try setOption(.reconnectIntervalMax, to: max)
    }

    /// Sends a ZMTP ping every `intervalMilliseconds` (0 = off) and drops the connection when
    /// nothing arrives for `timeoutMilliseconds`. Default: off.
    public func setHeartbeat(intervalMilliseconds: Int32, timeoutMilliseconds: Int32) throws(ZeroMQError) {
        try setOption(.heartbeatInterval, to: intervalMilliseconds)
        try setOption(.heartbeatTimeout, to: timeoutMilliseconds)
    }

    /// On a `SUB`: receive messages whose first frame starts with `prefix` (empty = all).
    /// Default: nothing.
    public func setSubscribe(_ prefix: [UInt8]) throws(ZeroMQError) {
        try setOption(.subscribe, to: prefix)
    }

    /// Makes this socket a CURVE server with `keys` (set before `bind`): every connection is
    /// encrypted and authenticated, and clients must know the server's public key. With
    /// `zapDomain`, each client's public key is checked by the ZAP handler of the socket's
    /// context (see ``ZAPRequest``) before the connection is accepted.
    public func setCurveServer(_ keys: CurveKeyPair, zapDomain: String? = nil) throws(ZeroMQError) {
        try setOption(.curveServer, to: Int32(1))
        try setOption(.curveSecretKey, to: Array(keys.secretKey.utf8))
        if let zapDomain { try setOption(.zapDomain, to: Array(zapDomain.utf8)) }
    }

    /// Makes this socket a CURVE client of the server with public key `serverKey`, using `keys`
    /// (set before `connect`).
    public func setCurveClient(serverKey: String, keys: CurveKeyPair) throws(ZeroMQError) {
        try setOption(.curveServerKey, to: Array(serverKey.utf8))
        try setOption(.curvePublicKey, to: Array(keys.publicKey.utf8))
        try setOption(.curveSecretKey, to: Array(keys.secretKey.utf8))
    }
}
