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
                let steps = try await SagaTrace(client: client, correlationID: correlationID, since: since?.milliseconds).steps(topics: try topicList())
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
    static func printText(_ steps: [SagaTraceStep], colours: Bool) {
        let topics = Set(steps.map(\.record.topic)).count
        print("saga \(steps[0].metadata?.correlationID ?? String(decoding: steps[0].record.key ?? [], as: UTF8.self)): \(steps.count) events in \(topics) topic\(topics == 1 ? "" : "s")")
        var previous = steps[0].time
        for step in steps {
            let mark = step.mark
            let style: Terminal.Style = step.isFailure ? .red : .yellow
            let columns = [
                EventMetadata.formatTime(step.time), gap(step.time - previous), step.record.topic,
                "\(step.record.partition)/\(step.record.offset)", step.eventType, step.source,
            ]
            print(columns.joined(separator: "\t") + (mark.isEmpty ? "" : "\t" + Terminal.paint(mark, style, enabled: colours)))
            previous = step.time
        }
    }

    /// One JSON object per step (JSON Lines), keys sorted.
    static func printJSON(_ steps: [SagaTraceStep]) {
        var previous = steps[0].time
        for step in steps {
            printJSONLine(step.summary(previousTime: previous))
            previous = step.time
        }
    }

    /// A Mermaid sequence diagram: services and topics are participants, each event an arrow from
    /// its service to its topic (dashed for a compensation, a cross for a failure), dead letters as notes.
    static func printMermaid(_ steps: [SagaTraceStep], correlationID: String) {
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
