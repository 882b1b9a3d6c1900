/// A typed error code carried in a reply header. An open set: new codes may be added in later
/// protocol versions, so switch with a `default`.
///
/// The raw values are part of wire protocol v1 and never change meaning.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// No error (requests and successful replies).
    public static let none = ErrorCode(rawValue: 0)
    /// The broker failed in a way no other code describes.
    public static let unknown = ErrorCode(rawValue: 1)
    /// The header names a protocol version this peer does not speak.
    public static let unsupportedVersion = ErrorCode(rawValue: 2)
    /// The header names an operation this peer does not implement.
    public static let unsupportedOperation = ErrorCode(rawValue: 3)
    /// A frame is missing, too short, or has a length or count that does not fit.
    public static let malformedRequest = ErrorCode(rawValue: 4)
    /// A record batch failed its checksum or its structure does not parse.
    public static let corruptBatch = ErrorCode(rawValue: 5)
    /// A topic name breaks the naming rules (see ``TopicName``).
    public static let invalidTopicName = ErrorCode(rawValue: 6)
    /// The topic does not exist (and auto-creation is off).
    public static let unknownTopic = ErrorCode(rawValue: 7)
    /// The partition does not exist in the topic.
    public static let unknownPartition = ErrorCode(rawValue: 8)
    /// A record or batch is larger than the broker accepts.
    public static let recordTooLarge = ErrorCode(rawValue: 9)
    /// The requested offset is outside the log; details carry `earliest` and `latest`.
    public static let offsetOutOfRange = ErrorCode(rawValue: 10)
    /// The client's key may not perform the operation on the topic.
    public static let notAuthorized = ErrorCode(rawValue: 11)
    /// A topic with that name exists already.
    public static let topicAlreadyExists = ErrorCode(rawValue: 12)
    /// The broker could not write or sync its files (disk full, I/O error); nothing was appended.
    public static let storageError = ErrorCode(rawValue: 13)
    /// The broker is stopping and did not process the request.
    public static let brokerShuttingDown = ErrorCode(rawValue: 14)
    /// A field has a value outside its allowed range (for example zero partitions).
    public static let invalidRequest = ErrorCode(rawValue: 15)
    /// An idempotent batch's sequence skips ahead of the last one stored for its producer and
    /// partition (an earlier batch was lost); resend from the first unacknowledged batch.
    public static let outOfOrderSequence = ErrorCode(rawValue: 16)
    /// An idempotent batch was stored already, too long ago for the broker to tell its offset;
    /// the producer may count it as acknowledged.
    public static let duplicateSequence = ErrorCode(rawValue: 17)
    /// The group does not know the member id (its session timed out, or the broker restarted);
    /// join again.
    public static let unknownMember = ErrorCode(rawValue: 18)
    /// A commit from an older generation, or for a partition the member does not own (fencing);
    /// refresh the assignment with a heartbeat.
    public static let staleGeneration = ErrorCode(rawValue: 19)
    /// An administrative change to a group (an offset reset) while it has live members.
    public static let groupNotEmpty = ErrorCode(rawValue: 20)
    /// A record batch's header disagrees with its records (attributes, last offset delta,
    /// first or max timestamp, record count); details `field` is the header field's byte
    /// offset. The batch is refused, never rewritten.
    public static let inconsistentBatch = ErrorCode(rawValue: 21)
    /// A conditional produce (``KeyCondition``) found another last offset for its key; details
    /// `lastOffset` is the key's current last offset (-1: it has no record). Nothing was stored.
    public static let keyConflict = ErrorCode(rawValue: 22)

    /// A stable lower-case name, used in messages and logs.
    public var name: String {
        switch self {
        case .none: "none"
        case .unknown: "unknown"
        case .unsupportedVersion: "unsupported version"
        case .unsupportedOperation: "unsupported operation"
        case .malformedRequest: "malformed request"
        case .corruptBatch: "corrupt batch"
        case .invalidTopicName: "invalid topic name"
        case .unknownTopic: "unknown topic"
        case .unknownPartition: "unknown partition"
        case .recordTooLarge: "record too large"
        case .offsetOutOfRange: "offset out of range"
        case .notAuthorized: "not authorized"
        case .topicAlreadyExists: "topic already exists"
        case .storageError: "storage error"
        case .brokerShuttingDown: "broker shutting down"
        case .invalidRequest: "invalid request"
        case .outOfOrderSequence: "out of order sequence"
        case .duplicateSequence: "duplicate sequence"
        case .unknownMember: "unknown member"
        case .staleGeneration: "stale generation"
        case .groupNotEmpty: "group not empty"
        case .inconsistentBatch: "inconsistent batch"
        case .keyConflict: "key conflict"
        default: "error \(rawValue)"
        }
    }

    public var description: String { name }
}

/// An error found while encoding or decoding wire data, or one a peer replied with.
/// The `code` is what goes on the wire; `message` is one human-readable line.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The typed code sent in the reply header.
    public var code: ErrorCode
    /// One line that says what was wrong, naming the field or value.
    public var message: String
    /// Numeric facts that let a client recover (for ``ErrorCode/offsetOutOfRange``: `earliest`, `latest`).
    public var details: [String: Int64]

    public init(_ code: ErrorCode, _ message: String, details: [String: Int64] = [:]) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.name): \(message)" }

    static func malformed(_ message: String) -> WireError { WireError(.malformedRequest, message) }
    static func corrupt(_ message: String) -> WireError { WireError(.corruptBatch, message) }
}
