/// One request of the ZeroMQ Authentication Protocol (ZAP, RFC 27): a server socket with a ZAP
/// domain asks, for every new connection, whether to admit the peer. The handler is a `REP`
/// socket bound to ``ZAPRequest/endpoint`` in the same context as the server socket; it must
/// be bound before the server socket binds, and answer each request with ``reply(admit:statusText:userID:)``.
public struct ZAPRequest: Sendable {
    /// Where a context's ZAP handler listens.
    public static let endpoint = "inproc://zeromq.zap.01"

    /// Echoed in the reply.
    public let requestID: [UInt8]
    /// The server socket's ZAP domain.
    public let domain: String
    /// The peer's address (IP).
    public let address: String
    /// The security mechanism: `CURVE`, `PLAIN` or `NULL`.
    public let mechanism: String
    /// For CURVE, the client's public key in Z85; nil for other mechanisms.
    public let curvePublicKey: String?

    /// Parses the frames a ZAP handler received; nil if they are not a version 1.0 request.
    public init?(frames: [Frame]) {
        guard frames.count >= 6, frames[0].bytes == Array("1.0".utf8) else { return nil }
        requestID = frames[1].bytes
        domain = String(decoding: frames[2].bytes, as: UTF8.self)
        address = String(decoding: frames[3].bytes, as: UTF8.self)
        mechanism = String(decoding: frames[5].bytes, as: UTF8.self)
        curvePublicKey = mechanism == "CURVE" && frames.count >= 7 ? CurveKeyPair.z85(frames[6].bytes) : nil
    }

    /// The reply frames: status 200 with `userID` (which every message of the connection then
    /// carries as its `User-Id` property, see ``Frame/property(_:)``) or 400.
    public func reply(admit: Bool, statusText: String, userID: String = "") -> [[UInt8]] {
        [Array("1.0".utf8), requestID, Array((admit ? "200" : "400").utf8), Array(statusText.utf8),
         Array((admit ? userID : "").utf8), []]
    }
}
