import SpoolWire

/// One record of a saga, with what its envelope says: the unit of `spool saga trace` and of the
/// console's saga timeline.
public struct SagaTraceStep: Sendable {
    /// The record as stored.
    public var record: SpoolRecord
    /// The envelope; nil when the record carries none (or a malformed one, see ``problem``).
    public var metadata: EventMetadata?
    /// Why the envelope could not be read.
    public var problem: String?
    /// The `spool-event-role` header (success, failure, compensation, timeout), if any.
    public var role: String?

    /// Reads `record`'s envelope and role; a malformed envelope becomes ``problem``.
    public init(record: SpoolRecord) {
        self.record = record
        role = record.headers.text(of: EventHeaderName.role)
        do throws(SpoolError) {
            metadata = try EventMetadata(headers: record.headers)
        } catch {
            problem = error.message
        }
    }

    /// Event time, or the record's timestamp when the event has none.
    public var time: Int64 { metadata.map { $0.time > 0 ? $0.time : record.timestamp } ?? record.timestamp }
    /// The event type, or `-` for a record without an envelope.
    public var eventType: String { metadata?.eventType ?? "-" }
    /// The emitting service, or `-` when unknown.
    public var source: String { metadata.map { $0.source.isEmpty ? "-" : $0.source } ?? "-" }

    /// A dead-letter header's value.
    public func deadLetter(_ name: String) -> String? {
        record.headers.text(of: name)
    }

    /// The dead-letter headers without their prefix (`error`, `attempts`, `group`, …); empty
    /// for a record that was not dead-lettered.
    public var deadLetterHeaders: [String: String] {
        Dictionary(record.headers.filter { $0.name.hasPrefix(DeadLetterHeaderName.prefix) }
            .map { (String($0.name.dropFirst(DeadLetterHeaderName.prefix.count)), String(decoding: $0.value, as: UTF8.self)) }) { $1 }
    }

    /// True for a record the saga kit moved to a dead-letter topic.
    public var isDeadLettered: Bool { deadLetter(DeadLetterHeaderName.error) != nil || deadLetter(DeadLetterHeaderName.origin) != nil }

    /// True for a failure or a dead-lettered record: what a timeline shows in red.
    public var isFailure: Bool { isDeadLettered || role == EventRole.failure.rawValue }

    /// FAILED, COMPENSATION, TIMEOUT, DEAD-LETTERED (error) or "".
    public var mark: String {
        var marks: [String] = []
        switch role {
        case EventRole.failure.rawValue: marks.append("FAILED")
        case EventRole.compensation.rawValue: marks.append("COMPENSATION")
        case EventRole.timeout.rawValue: marks.append("TIMEOUT")
        default: break
        }
        if isDeadLettered {
            let attempts = deadLetter(DeadLetterHeaderName.attempts).map { " after \($0) attempts" } ?? ""
            marks.append("DEAD-LETTERED\(attempts): \(deadLetter(DeadLetterHeaderName.error) ?? "no error recorded")")
        }
        if let problem { marks.append("MALFORMED ENVELOPE: \(problem)") }
        return marks.joined(separator: "; ")
    }

    /// The step as `spool saga trace --format json` and the console's API print it.
    public struct Summary: Encodable, Sendable {
        public var time: String
        public var timeMilliseconds: Int64
        public var gapMilliseconds: Int64
        public var topic: String
        public var partition: Int32
        public var offset: Int64
        public var eventType: String?
        public var eventID: String?
        public var causationID: String?
        public var source: String?
        public var role: String?
        public var mark: String
        public var deadLetter: [String: String]?
        public var problem: String?
    }

    /// This step's summary, `previousTime` being the time of the step before it (its own for the first).
    public func summary(previousTime: Int64) -> Summary {
        let deadLetter = deadLetterHeaders
        return Summary(time: EventMetadata.formatTime(time), timeMilliseconds: time, gapMilliseconds: time - previousTime,
                       topic: record.topic, partition: record.partition, offset: record.offset,
                       eventType: metadata?.eventType, eventID: metadata?.eventID, causationID: metadata?.causationID,
                       source: metadata?.source, role: role, mark: mark, deadLetter: deadLetter.isEmpty ? nil : deadLetter,
                       problem: problem)
    }
}

/// Finds the records of one saga across topics: those keyed by its correlation id (the event
/// envelope's key), so only the key's partition of each topic is read; a dead-letter topic (name
/// ending in `.dlq`) is read whole, since the saga kit keeps the key but not the partition count.
public struct SagaTrace: Sendable {
    /// The client that reads.
    public let client: SpoolClient
    /// The saga's correlation id.
    public let correlationID: String
    /// Only records from this time on (ms since the epoch); nil for all.
    public let since: Int64?

    /// A trace of `correlationID` read through `client`.
    public init(client: SpoolClient, correlationID: String, since: Int64? = nil) {
        self.client = client
        self.correlationID = correlationID
        self.since = since
    }

    /// Every record keyed by the correlation id in `topics` (all when nil), ordered by event time
    /// (then topic and offset). Throws ``SpoolError/Code/unknownTopic`` for a named topic that does not exist.
    public func steps(topics names: [String]? = nil) async throws(SpoolError) -> [SagaTraceStep] {
        let known = try await client.topics(names ?? [])
        if let names, let missing = names.first(where: { name in !known.contains { $0.name == name } }) {
            throw SpoolError(.unknownTopic, "topic '\(missing)' does not exist")
        }
        let key = Array(correlationID.utf8)
        var steps: [SagaTraceStep] = []
        for topic in known {
            let partitions = topic.name.hasSuffix(".dlq")
                ? topic.partitions.map(\.partition)
                : [Partitioner.partition(forKey: key, partitionCount: Int32(topic.partitions.count))]
            for partition in partitions {
                let records = try await client.records(of: topic.name, partition: partition, from: since.map { .timestamp($0) } ?? .earliest, key: key)
                steps += records.map(SagaTraceStep.init(record:))
            }
        }
        return steps.sorted { ($0.time, $0.record.topic, $0.record.offset) < ($1.time, $1.record.topic, $1.record.offset) }
    }
}
