import Foundation
import SpoolWire

/// A typed event: a `Codable` payload with a stable type name. By default an event is published
/// to the topic named like its type.
///
/// ```swift
/// struct OrderCreated: SpoolEvent {
///     static let eventType = "order-created"
///     var orderID: String
///     var quantity: Int
/// }
/// ```
public protocol SpoolEvent: Codable, Sendable {
    /// The type name carried in the `spool-event-type` header; stable across versions.
    static var eventType: String { get }
    /// The topic events of this type are published to; ``eventType`` unless overridden.
    static var topic: String { get }
    /// The payload's schema version (1 unless overridden). A reader refuses a record whose
    /// version is newer than the one it was built with.
    static var schemaVersion: Int { get }
}

extension SpoolEvent {
    public static var topic: String { eventType }
    public static var schemaVersion: Int { 1 }
}

/// A request to one participant of an orchestrated saga, answered with one ``Reply``. Commands
/// of a participant share its command topic (override ``SpoolEvent/topic``, for example
/// `stock.commands`); the reply goes to `Reply.topic`, the orchestrator's reply topic. The saga
/// kit's `SagaParticipant.handle` gives each command its effect once and its reply every time it
/// is delivered. Declared here, next to ``SpoolEvent``, so that a module of event definitions
/// shared by services needs only `Spool`.
public protocol SagaCommand: SpoolEvent {
    /// The answer, published to the orchestrator's reply topic.
    associatedtype Reply: SpoolEvent
}

/// The record-header names of the event envelope. The payload is the record's value (JSON); the
/// key is the correlation id, so one saga's events keep their order within each topic.
public enum EventHeaderName {
    /// Unique id of this event (a UUID string); what inboxes deduplicate on.
    public static let eventID = "spool-event-id"
    /// ``SpoolEvent/eventType`` of the payload.
    public static let eventType = "spool-event-type"
    /// The saga (or any unit of work) the event belongs to.
    public static let correlationID = "spool-correlation-id"
    /// The id of the event that caused this one; absent for the first event of a saga.
    public static let causationID = "spool-causation-id"
    /// When the event was created: ISO 8601, UTC, milliseconds (`2026-11-22T10:00:00.123Z`).
    public static let time = "spool-event-time"
    /// ``SpoolEvent/schemaVersion`` of the payload, in decimal.
    public static let schemaVersion = "spool-schema-version"
    /// The service that emitted the event.
    public static let source = "spool-source"
    /// The event's part in a saga, set by the saga kit: one of ``EventRole``'s raw values.
    public static let role = "spool-event-role"
}

/// What an event means for its saga (header ``EventHeaderName/role``); tools such as
/// `spool saga trace` mark failures and compensations with it.
public enum EventRole: String, Sendable, CaseIterable {
    /// A step succeeded (or a saga started).
    case success
    /// A step failed; compensations follow.
    case failure
    /// A compensation undid an earlier step.
    case compensation
    /// A timeout the saga asked for fired.
    case timeout
}

/// The headers the saga kit adds when it moves a record to a dead-letter topic (`<topic>.dlq`);
/// the record keeps its key, value and original headers.
public enum DeadLetterHeaderName {
    /// Why the last attempt failed (one line).
    public static let error = "spool-dlq-error"
    /// How many attempts were made, in decimal.
    public static let attempts = "spool-dlq-attempts"
    /// The consumer group (service) that gave up.
    public static let group = "spool-dlq-group"
    /// Where the record came from: `topic/partition@offset`.
    public static let origin = "spool-dlq-origin"
    /// When it was dead-lettered: ISO 8601 UTC.
    public static let time = "spool-dlq-time"
    /// What every dead-letter header's name starts with: the original headers are the others.
    public static let prefix = "spool-dlq-"
}

/// Everything about an event except its payload, as carried in record headers.
public struct EventMetadata: Hashable, Sendable, Codable {
    /// Unique id of the event.
    public var eventID: String
    /// The payload's type name.
    public var eventType: String
    /// The saga the event belongs to.
    public var correlationID: String
    /// The event that caused this one, if any.
    public var causationID: String?
    /// Creation time, milliseconds since the Unix epoch.
    public var time: Int64
    /// The payload's schema version.
    public var schemaVersion: Int
    /// The emitting service ("" if unknown).
    public var source: String

    /// Metadata for a new event: a fresh UUID, the current time.
    public init(eventType: String, correlationID: String, causationID: String? = nil, source: String, schemaVersion: Int = 1,
                eventID: String = UUID().uuidString.lowercased(), time: Int64 = EventMetadata.now()) {
        self.eventID = eventID
        self.eventType = eventType
        self.correlationID = correlationID
        self.causationID = causationID
        self.time = time
        self.schemaVersion = schemaVersion
        self.source = source
    }

    /// Reads the envelope headers of `headers`. Returns nil if the record carries no event id or
    /// type (it is not an event); throws ``SpoolError/Code/invalidArgument`` naming the header if
    /// one is present but malformed.
    public init?(headers: [RecordHeader]) throws(SpoolError) {
        func string(_ name: String) throws(SpoolError) -> String? {
            guard let header = headers.last(where: { $0.name == name }) else { return nil }
            guard let value = String(validating: header.value, as: UTF8.self) else {
                throw SpoolError(.invalidArgument, "event header \(name) is not UTF-8")
            }
            return value
        }
        guard let eventID = try string(EventHeaderName.eventID), let eventType = try string(EventHeaderName.eventType) else { return nil }
        guard let correlationID = try string(EventHeaderName.correlationID) else {
            throw SpoolError(.invalidArgument, "event \(eventID) has no \(EventHeaderName.correlationID) header")
        }
        let time: Int64
        if let text = try string(EventHeaderName.time) {
            guard let parsed = EventMetadata.parseTime(text) else {
                throw SpoolError(.invalidArgument, "event \(eventID): \(EventHeaderName.time) '\(text)' is not an ISO 8601 UTC time")
            }
            time = parsed
        } else {
            time = 0
        }
        let version: Int
        if let text = try string(EventHeaderName.schemaVersion) {
            guard let parsed = Int(text), parsed > 0 else {
                throw SpoolError(.invalidArgument, "event \(eventID): \(EventHeaderName.schemaVersion) '\(text)' is not a positive integer")
            }
            version = parsed
        } else {
            version = 1
        }
        self.init(eventType: eventType, correlationID: correlationID, causationID: try string(EventHeaderName.causationID),
                  source: try string(EventHeaderName.source) ?? "", schemaVersion: version, eventID: eventID, time: time)
    }

    /// The envelope as record headers, in a fixed order.
    public var headers: [RecordHeader] {
        var headers = [
            RecordHeader(name: EventHeaderName.eventID, string: eventID),
            RecordHeader(name: EventHeaderName.eventType, string: eventType),
            RecordHeader(name: EventHeaderName.correlationID, string: correlationID),
        ]
        if let causationID { headers.append(RecordHeader(name: EventHeaderName.causationID, string: causationID)) }
        headers.append(RecordHeader(name: EventHeaderName.time, string: EventMetadata.formatTime(time)))
        headers.append(RecordHeader(name: EventHeaderName.schemaVersion, string: String(schemaVersion)))
        if !source.isEmpty { headers.append(RecordHeader(name: EventHeaderName.source, string: source)) }
        return headers
    }

    /// The current time in milliseconds since the Unix epoch.
    public static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// `milliseconds` as ISO 8601 UTC with milliseconds.
    public static func formatTime(_ milliseconds: Int64) -> String {
        // Whole seconds through Foundation, milliseconds by integer arithmetic (exact, unlike a Double).
        let (seconds, millis) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        let (wholeSeconds, fraction) = millis < 0 ? (seconds - 1, millis + 1000) : (seconds, millis)
        let text = Date(timeIntervalSince1970: Double(wholeSeconds)).formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
        let digits = String(fraction)
        return "\(text.dropLast()).\(String(repeating: "0", count: 3 - digits.count))\(digits)Z"
    }

    /// Parses an ISO 8601 time (with or without fractional seconds, `Z` or an offset) into
    /// milliseconds since the epoch; nil if it is not one.
    public static func parseTime(_ text: String) -> Int64? {
        let date = (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
        return date.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
    }
}

/// A typed event with its metadata: what a handler receives and what a producer sends.
public struct EventEnvelope<Payload: SpoolEvent>: Sendable {
    /// Id, type, correlation, causation, time, version, source.
    public var metadata: EventMetadata
    /// The event itself.
    public var payload: Payload

    /// A new event of saga `correlationID`, caused by `causationID` (nil for a saga's first event).
    public init(_ payload: Payload, correlationID: String, causationID: String? = nil, source: String) {
        self.metadata = EventMetadata(eventType: Payload.eventType, correlationID: correlationID, causationID: causationID,
                                      source: source, schemaVersion: Payload.schemaVersion)
        self.payload = payload
    }

    /// Decodes `record` as an event of this type. Throws ``SpoolError/Code/invalidArgument`` if the
    /// record is not an event, is an event of another type, has a newer schema version than
    /// ``SpoolEvent/schemaVersion``, or its value is not this payload's JSON; the message says which.
    public init(record: SpoolRecord) throws(SpoolError) {
        guard let metadata = try EventMetadata(headers: record.headers) else {
            throw SpoolError(.invalidArgument, "\(record.topic)/\(record.partition)@\(record.offset) is not an event (no \(EventHeaderName.eventID) or \(EventHeaderName.eventType) header)")
        }
        try self.init(metadata: metadata, value: record.value)
    }

    /// Decodes `value` as the JSON payload described by `metadata`; throws like ``init(record:)``.
    public init(metadata: EventMetadata, value: [UInt8]) throws(SpoolError) {
        guard metadata.eventType == Payload.eventType else {
            throw SpoolError(.invalidArgument, "event \(metadata.eventID) is a '\(metadata.eventType)', not a '\(Payload.eventType)'")
        }
        guard metadata.schemaVersion <= Payload.schemaVersion else {
            throw SpoolError(.invalidArgument, "event \(metadata.eventID) has schema version \(metadata.schemaVersion); this reader knows up to \(Payload.schemaVersion)")
        }
        do {
            self.payload = try JSONDecoder().decode(Payload.self, from: Data(value))
        } catch {
            throw SpoolError(.invalidArgument, "event \(metadata.eventID) ('\(metadata.eventType)') has a payload that does not decode: \(error)")
        }
        self.metadata = metadata
    }

    /// The record to publish: key = correlation id, headers = the envelope, value = JSON payload.
    public func record() throws(SpoolError) -> OutgoingRecord {
        let value: Data
        do {
            value = try EventEnvelope.encoder.encode(payload)
        } catch {
            throw SpoolError(.invalidArgument, "event \(metadata.eventID) ('\(metadata.eventType)') does not encode: \(error)")
        }
        return OutgoingRecord(key: Array(metadata.correlationID.utf8), value: Array(value), headers: metadata.headers,
                              timestamp: metadata.time)
    }

    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }
}

extension Producer {
    /// Publishes `event` to `Payload.topic`, keyed by its correlation id, and returns once the
    /// broker acknowledged it; throws like ``send(to:partition:key:value:headers:timestamp:)``.
    @discardableResult
    public func send<Payload: SpoolEvent>(_ event: EventEnvelope<Payload>) async throws(SpoolError) -> PublishResult {
        let record = try event.record()
        return try await send(to: Payload.topic, key: record.key, value: record.value, headers: record.headers, timestamp: record.timestamp)
    }
}
