import ArgumentParser
import Foundation
import Spool

/// `spool saga`: tools for sagas built on the event envelope.
struct Saga: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow sagas across topics; list, show, retry and compensate orchestrated and supervised sagas; print supervisor rules.",
        subcommands: [Trace.self, List.self, Show.self, Retry.self, Compensate.self, Rules.self]
    )

    /// `spool saga trace`: one saga's events across topics, as a timeline.
    struct Trace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every event of one saga, across topics, as a timeline.",
            discussion: """
                Finds the records whose key is the correlation id (the event envelope's key) and \
                orders them by event time (spool-event-time, else the record's timestamp). The \
                key decides the partition, so only that partition of each topic is read; a \
                dead-letter topic (name ending in .dlq) is read whole. --since bounds the scan \
                by time, --topics restricts it (default: every topic).

                Text columns: time, gap since the previous step, topic, partition/offset, event \
                type, service (spool-source), and a mark: FAILED (role failure), COMPENSATION, \
                TIMEOUT, or DEAD-LETTERED with the error the saga kit recorded. --format json \
                prints one object per step; --format mermaid a sequence diagram (paste it into a \
                Markdown ```mermaid block).

                Exit 1 when no event of the saga is found.

                Examples:
                  spool saga trace 3f1c2a9e-0b7d-4d43-9a51-2e8f7c1d0a64
                  spool saga trace order-42 --since 1h --topics order-created,stock-decreased,payment-failed
                  spool saga trace order-42 --format mermaid > order-42.mmd
                """
        )

        /// How the timeline is printed.
        enum TraceFormat: String, ExpressibleByArgument, CaseIterable {
            case text, json, mermaid
        }

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The saga's correlation id (the events' key).")
        var correlationID: String

        @Option(help: ArgumentHelp("Only these topics, comma-separated (default: all).", valueName: "a,b"))
        var topics: String?

        @Option(help: ArgumentHelp("Only records from this time on (ISO 8601, or an age like 1h).", valueName: "time"))
        var since: TimeArgument?

        @Option(help: "Output: text (a timeline), json (one object per step) or mermaid (a sequence diagram).")
        var format: TraceFormat = .text

        func validate() throws {
            if correlationID.isEmpty { throw ValidationError("the correlation id is empty") }
        }

        func run() async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                let steps = try await SagaScan(client: client, correlationID: correlationID, since: since?.milliseconds).steps(topics: try topicList())
                guard !steps.isEmpty else { throw SpoolError(.invalidArgument, "no event of saga '\(correlationID)' found") }
                switch format {
                case .text: SagaTimeline.printText(steps, colours: Terminal.colours(STDOUT_FILENO))
                case .json: SagaTimeline.printJSON(steps)
                case .mermaid: SagaTimeline.printMermaid(steps, correlationID: correlationID)
                }
            }
        }

        private func topicList() throws(SpoolError) -> [String]? {
            guard let topics else { return nil }
            let names = topics.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            for name in names { try SpoolClient.checkTopicName(name) }
            return names
        }
    }
}

/// One record of a saga, with what its envelope says.
struct SagaStep: Sendable {
    /// The record as stored.
    var record: SpoolRecord
    /// The envelope; nil when the record carries none (or a malformed one, see `problem`).
    var metadata: EventMetadata?
    /// Why the envelope could not be read.
    var problem: String?
    /// The `spool-event-role` header (success, failure, compensation, timeout), if any.
    var role: String?

    /// Event time, or the record's timestamp when the event has none.
    var time: Int64 { metadata.map { $0.time > 0 ? $0.time : record.timestamp } ?? record.timestamp }
    /// The event type, or `-` for a record without an envelope.
    var eventType: String { metadata?.eventType ?? "-" }
    /// The emitting service, or `-` when unknown.
    var source: String { metadata.map { $0.source.isEmpty ? "-" : $0.source } ?? "-" }

    /// A dead-letter header's value.
    func deadLetter(_ name: String) -> String? {
        record.headers.text(of: name)
    }

    /// True for a record the saga kit moved to a dead-letter topic.
    var isDeadLettered: Bool { deadLetter(DeadLetterHeaderName.error) != nil || deadLetter(DeadLetterHeaderName.origin) != nil }

    /// FAILED, COMPENSATION, TIMEOUT, DEAD-LETTERED (error) or "".
    var mark: String {
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
}

/// Reads the records of one saga from the topics.
struct SagaScan {
    let client: SpoolClient
    let correlationID: String
    let since: Int64?

    /// Every record keyed by the correlation id in `topics` (all when nil), ordered by time.
    func steps(topics names: [String]?) async throws(SpoolError) -> [SagaStep] {
        let known = try await client.topics(names ?? [])
        if let names, let missing = names.first(where: { name in !known.contains { $0.name == name } }) {
            throw SpoolError(.unknownTopic, "topic '\(missing)' does not exist")
        }
        let key = Array(correlationID.utf8)
        var steps: [SagaStep] = []
        for topic in known {
            let partitions = topic.name.hasSuffix(".dlq")
                ? topic.partitions.map(\.partition)
                : [Partitioner.partition(forKey: key, partitionCount: Int32(topic.partitions.count))]
            for partition in partitions {
                steps += try await scan(topic: topic.name, partition: partition, key: key)
            }
        }
        return steps.sorted { ($0.time, $0.record.topic, $0.record.offset) < ($1.time, $1.record.topic, $1.record.offset) }
    }

    private func scan(topic: String, partition: Int32, key: [UInt8]) async throws(SpoolError) -> [SagaStep] {
        try await client.records(of: topic, partition: partition, from: since.map { .timestamp($0) } ?? .earliest, key: key).map(Self.step)
    }

    private static func step(_ record: SpoolRecord) -> SagaStep {
        let role = record.headers.text(of: EventHeaderName.role)
        do throws(SpoolError) {
            return SagaStep(record: record, metadata: try EventMetadata(headers: record.headers), role: role)
        } catch {
            return SagaStep(record: record, metadata: nil, problem: error.message, role: role)
        }
    }
}

/// The three renderings of a saga's steps.
enum SagaTimeline {
    /// `+1.234s` between two times in milliseconds.
    static func gap(_ milliseconds: Int64) -> String {
        let sign = milliseconds < 0 ? "-" : "+"
        let magnitude = Swift.abs(milliseconds)
        return "\(sign)\(magnitude / 1000).\(String(magnitude % 1000).leftPadded(to: 3))s"
    }

    /// A header line, then one tab-separated line per step: time, gap, topic, partition/offset,
    /// event type, service and the mark (coloured when `colours`).
    static func printText(_ steps: [SagaStep], colours: Bool) {
        let topics = Set(steps.map(\.record.topic)).count
        print("saga \(steps[0].metadata?.correlationID ?? String(decoding: steps[0].record.key ?? [], as: UTF8.self)): \(steps.count) events in \(topics) topic\(topics == 1 ? "" : "s")")
        var previous = steps[0].time
        for step in steps {
            let mark = step.mark
            let style: Terminal.Style = step.isDeadLettered || step.role == EventRole.failure.rawValue ? .red : .yellow
            let columns = [
                EventMetadata.formatTime(step.time), gap(step.time - previous), step.record.topic,
                "\(step.record.partition)/\(step.record.offset)", step.eventType, step.source,
            ]
            print(columns.joined(separator: "\t") + (mark.isEmpty ? "" : "\t" + Terminal.paint(mark, style, enabled: colours)))
            previous = step.time
        }
    }

    /// One step as JSON Lines.
    private struct JSONStep: Encodable {
        var time: String
        var timeMilliseconds: Int64
        var gapMilliseconds: Int64
        var topic: String
        var partition: Int32
        var offset: Int64
        var eventType: String?
        var eventID: String?
        var causationID: String?
        var source: String?
        var role: String?
        var deadLetter: [String: String]?
        var problem: String?
    }

    /// One JSON object per step (JSON Lines), keys sorted.
    static func printJSON(_ steps: [SagaStep]) {
        var previous = steps[0].time
        for step in steps {
            let deadLetter = Dictionary(uniqueKeysWithValues: step.record.headers.filter { $0.name.hasPrefix(DeadLetterHeaderName.prefix) }
                .map { (String($0.name.dropFirst(DeadLetterHeaderName.prefix.count)), String(decoding: $0.value, as: UTF8.self)) })
            let line = JSONStep(time: EventMetadata.formatTime(step.time), timeMilliseconds: step.time, gapMilliseconds: step.time - previous,
                                topic: step.record.topic, partition: step.record.partition, offset: step.record.offset,
                                eventType: step.metadata?.eventType, eventID: step.metadata?.eventID, causationID: step.metadata?.causationID,
                                source: step.metadata?.source, role: step.role, deadLetter: deadLetter.isEmpty ? nil : deadLetter,
                                problem: step.problem)
            printJSONLine(line)
            previous = step.time
        }
    }

    /// A Mermaid sequence diagram: services and topics are participants, each event an arrow from
    /// its service to its topic (dashed for a compensation, a cross for a failure), dead letters as notes.
    static func printMermaid(_ steps: [SagaStep], correlationID: String) {
        var lines = ["sequenceDiagram", "    title saga \(label(correlationID))"]
        var participants: [String: String] = [:]
        func participant(_ name: String, _ prefix: String) -> String {
            if let id = participants[prefix + name] { return id }
            let id = "\(prefix)\(participants.count)"
            participants[prefix + name] = id
            lines.append("    participant \(id) as \(label(name))")
            return id
        }
        var previous = steps[0].time
        var body: [String] = []
        for step in steps {
            let from = participant(step.source, "S")
            let to = participant(step.record.topic, "T")
            let arrow = switch step.role {
            case EventRole.failure.rawValue: "-x"
            case EventRole.compensation.rawValue: "-->>"
            case EventRole.timeout.rawValue: "--)"
            default: "->>"
            }
            body.append("    \(from)\(arrow)\(to): \(label(step.eventType)) \(gap(step.time - previous)) @\(step.record.partition)/\(step.record.offset)")
            if !step.mark.isEmpty { body.append("    Note over \(to): \(label(step.mark))") }
            previous = step.time
        }
        print((lines + body).joined(separator: "\n"))
    }

    /// Text Mermaid shows as is: no `;`, `#` or line breaks, which end or escape a statement.
    private static func label(_ text: String) -> String {
        String(text.map { ";#\n\r".contains($0) ? " " : $0 })
    }
}
