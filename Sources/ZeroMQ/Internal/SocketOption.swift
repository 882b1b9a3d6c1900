import CZeroMQ

/// A socket option's code and name (the name goes into error messages).
/// Adding an option is one line here plus a public setter in `Socket+Options.swift`.
struct SocketOption: Sendable {
    let code: Int32
    let name: String

    static let linger = SocketOption(code: ZMQ_LINGER, name: "ZMQ_LINGER")
    static let sendHighWaterMark = SocketOption(code: ZMQ_SNDHWM, name: "ZMQ_SNDHWM")
    static let receiveHighWaterMark = SocketOption(code: ZMQ_RCVHWM, name: "ZMQ_RCVHWM")
    static let routerMandatory = SocketOption(code: ZMQ_ROUTER_MANDATORY, name: "ZMQ_ROUTER_MANDATORY")
    static let maxMessageSize = SocketOption(code: ZMQ_MAXMSGSIZE, name: "ZMQ_MAXMSGSIZE")
    static let routingID = SocketOption(code: ZMQ_ROUTING_ID, name: "ZMQ_ROUTING_ID")
    static let immediate = SocketOption(code: ZMQ_IMMEDIATE, name: "ZMQ_IMMEDIATE")
    static let reconnectInterval = SocketOption(code: ZMQ_RECONNECT_IVL, name: "ZMQ_RECONNECT_IVL")
    static let reconnectIntervalMax = SocketOption(code: ZMQ_RECONNECT_IVL_MAX, name: "ZMQ_RECONNECT_IVL_MAX")
    static let heartbeatInterval = SocketOption(code: ZMQ_HEARTBEAT_IVL, name: "ZMQ_HEARTBEAT_IVL")
    static let heartbeatTimeout = SocketOption(code: ZMQ_HEARTBEAT_TIMEOUT, name: "ZMQ_HEARTBEAT_TIMEOUT")
    static let subscribe = SocketOption(code: ZMQ_SUBSCRIBE, name: "ZMQ_SUBSCRIBE")
    static let lastEndpoint = SocketOption(code: ZMQ_LAST_ENDPOINT, name: "ZMQ_LAST_ENDPOINT")
    static let events = SocketOption(code: ZMQ_EVENTS, name: "ZMQ_EVENTS")
    static let curveServer = SocketOption(code: ZMQ_CURVE_SERVER, name: "ZMQ_CURVE_SERVER")
    static let curvePublicKey = SocketOption(code: ZMQ_CURVE_PUBLICKEY, name: "ZMQ_CURVE_PUBLICKEY")
    static let curveSecretKey = SocketOption(code: ZMQ_CURVE_SECRETKEY, name: "ZMQ_CURVE_SECRETKEY")
    static let curveServerKey = SocketOption(code: ZMQ_CURVE_SERVERKEY, name: "ZMQ_CURVE_SERVERKEY")
    static let zapDomain = SocketOption(code: ZMQ_ZAP_DOMAIN, name: "ZMQ_ZAP_DOMAIN")
}

extension Socket {
    /// Sets an integer option; the width of `Value` must match libzmq's (`int` or `int64_t`).
    func setOption<Value: FixedWidthInteger>(_ option: SocketOption, to value: Value) throws(ZeroMQError) {
        var value = value
        try Call.zmq("zmq_setsockopt(\(option.name), \(value))") {
            withUnsafeBytes(of: &value) { zmq_setsockopt(handle, option.code, $0.baseAddress, $0.count) }
        }
    }

    /// Sets a binary option, passed without a trailing NUL.
    func setOption(_ option: SocketOption, to bytes: [UInt8]) throws(ZeroMQError) {
        try Call.zmq("zmq_setsockopt(\(option.name), \(bytes.count) bytes)") {
            bytes.withUnsafeBytes { zmq_setsockopt(handle, option.code, $0.baseAddress, $0.count) }
        }
    }

    /// Reads an `int` option.
    func int32Option(_ option: SocketOption) throws(ZeroMQError) -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        try Call.zmq("zmq_getsockopt(\(option.name))") { zmq_getsockopt(handle, option.code, &value, &size) }
        return value
    }

    /// Reads a NUL-terminated string option of at most 1023 bytes.
    func stringOption(_ option: SocketOption) throws(ZeroMQError) -> String {
        var buffer = [UInt8](repeating: 0, count: 1024)
        var size = buffer.count
        try Call.zmq("zmq_getsockopt(\(option.name))") {
            buffer.withUnsafeMutableBytes { zmq_getsockopt(handle, option.code, $0.baseAddress, &size) }
        }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }
}
