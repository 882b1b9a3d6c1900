import SpoolWire

/// The one error type of the SDK: what failed (`code`), one line saying why (`message`), and
/// whether trying again may help.
public struct SpoolError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure. An open set: compare with the static members, switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A stable lower-case name.
        public let name: String
        init(_ name: String) { self.name = name }

        /// No reply within the request timeout.
        public static let timedOut = Code("timed out")
        /// The broker could not be reached (refused, unreachable, no answer at connect).
        public static let connectionFailed = Code("connection failed")
        /// The connection dropped while the request was in flight; it may or may not have been processed.
        public static let connectionLost = Code("connection lost")
        /// The client was closed.
        public static let clientClosed = Code("client closed")
        /// The caller passed a value the SDK rejects before sending (a bad topic name, say).
        public static let invalidArgument = Code("invalid argument")
        /// The broker's reply did not parse.
        public static let protocolViolation = Code("protocol violation")
        /// The task awaiting the reply was cancelled.
        public static let cancelled = Code("cancelled")

        /// The code for an error the broker replied with.
        public init(_ code: ErrorCode) { self.init(code.name) }
        /// See ``ErrorCode/unknownTopic``.
        public static let unknownTopic = Code(ErrorCode.unknownTopic)
        /// See ``ErrorCode/unknownPartition``.
        public static let unknownPartition = Code(ErrorCode.unknownPartition)
        /// See ``ErrorCode/invalidTopicName``.
        public static let invalidTopicName = Code(ErrorCode.invalidTopicName)
        /// See ``ErrorCode/recordTooLarge``.
        public static let recordTooLarge = Code(ErrorCode.recordTooLarge)
        /// See ``ErrorCode/offsetOutOfRange``.
        public static let offsetOutOfRange = Code(ErrorCode.offsetOutOfRange)
        /// See ``ErrorCode/topicAlreadyExists``.
        public static let topicAlreadyExists = Code(ErrorCode.topicAlreadyExists)
        /// See ``ErrorCode/storageError``.
        public static let storageError = Code(ErrorCode.storageError)
        /// See ``ErrorCode/brokerShuttingDown``.
        public static let brokerShuttingDown = Code(ErrorCode.brokerShuttingDown)
        /// See ``ErrorCode/notAuthorized``.
        public static let notAuthorized = Code(ErrorCode.notAuthorized)
        /// See ``ErrorCode/invalidRequest``.
        public static let invalidRequest = Code(ErrorCode.invalidRequest)
        /// See ``ErrorCode/outOfOrderSequence``.
        public static let outOfOrderSequence = Code(ErrorCode.outOfOrderSequence)
        /// See ``ErrorCode/duplicateSequence``.
        public static let duplicateSequence = Code(ErrorCode.duplicateSequence)
        /// See ``ErrorCode/unknownMember``.
        public static let unknownMember = Code(ErrorCode.unknownMember)
        /// See ``ErrorCode/staleGeneration``.
        public static let staleGeneration = Code(ErrorCode.staleGeneration)
        /// See ``ErrorCode/groupNotEmpty``.
        public static let groupNotEmpty = Code(ErrorCode.groupNotEmpty)
        /// A conditional publish found another last offset for its key; `details["lastOffset"]`
        /// is the key's current one (-1: none). Nothing was stored: reload and decide again.
        public static let keyConflict = Code(ErrorCode.keyConflict)

        public var description: String { name }
    }

    /// What kind of failure.
    public var code: Code
    /// One line saying what happened, naming the topic, offset or endpoint.
    public var message: String
    /// Numbers the broker attached (for `offsetOutOfRange`: `earliest`, `latest`).
    public var details: [String: Int64]
    /// The lower-level error, if any.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, details: [String: Int64] = [:], cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.details = details
        self.cause = cause
    }

    init(_ wire: WireError) {
        self.init(Code(wire.code), wire.message, details: wire.details)
    }

    /// True when the same request may succeed later unchanged (a lost connection, a timeout,
    /// a broker restarting or out of disk). A retried produce may be appended twice.
    public var isRetriable: Bool {
        [.timedOut, .connectionLost, .connectionFailed, .brokerShuttingDown, .storageError].contains(code)
    }

    /// True when retrying can never help (bad input, a closed client, no permission).
    public var isFatal: Bool {
        [.invalidArgument, .invalidTopicName, .recordTooLarge, .clientClosed, .notAuthorized, .protocolViolation].contains(code)
    }

    public var description: String { message }
}
