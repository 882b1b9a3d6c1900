import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool saga trace` over events published with the SDK's event envelope.
    @Suite struct CLISagaTests {
        struct Step: SpoolEvent {
            static let eventType = "saga-step"
            var note: String
        }

        /// A line of `spool saga trace --format json`.
        struct TracedStep: Decodable {
            var topic: String
            var role: String?
            var gapMilliseconds: Int64
            var eventID: String?
            var causationID: String?
            var deadLetter: [String: String]?
        }

        /// One step of the test saga: topic, service, role; published in this order, 100 ms apart.
        static let flow: [(topic: String, source: String, role: EventRole)] = [
            ("order-created", "order", .success), ("stock-decreased", "stock", .success), ("payment-failed", "balance", .failure),
            ("stock-restored", "stock", .compensation), ("order-cancelled", "order", .success),
        ]

        @Test(.timeLimit(.minutes(4)))
        func traceShowsOneSagaAcrossTopicsWithFailuresCompensationsAndDeadLetters() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-saga")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            let client = try await daemon.makeClient()
            defer { client.close() }
            for topic in Self.flow.map(\.topic) { try await client.createTopic(topic, partitions: 3) }
            let start = CLIReadTests.origin
            var previous: String?
            for saga in ["order-1", "order-2", "order-3"] {
                previous = nil
                for (index, step) in Self.flow.enumerated() {
                    var envelope = EventEnvelope(Step(note: "\(saga) \(step.topic)"), correlationID: saga, causationID: previous, source: step.source)
                    envelope.metadata.time = start + Int64(index) * 100
                    var record = try envelope.record()
                    record.headers.append(RecordHeader(name: EventHeaderName.role, string: step.role.rawValue))
                    try await client.publish(to: step.topic, records: [record])
                    previous = envelope.metadata.eventID
                    if saga == "order-2" && step.topic == "order-cancelled" {
                        record.headers += [RecordHeader(name: DeadLetterHeaderName.error, string: "mail server down"),
                                           RecordHeader(name: DeadLetterHeaderName.attempts, string: "5")]
                        record.timestamp = start + 1000
                        try await client.publish(to: "order-cancelled.dlq", records: [record])
                    }
                }
            }

            let trace = try await runSpool(["saga", "trace", "order-2"] + broker)
            #expect(trace.termination == .exited(0), "\(trace)")
            let lines = trace.stdoutLines
            try #require(lines.count == 7, "\(trace.stdoutText)")
            #expect(lines[0] == "saga order-2: 6 events in 6 topics")
            let columns = lines.dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
            #expect(columns.map { $0[2] } == Self.flow.map(\.topic) + ["order-cancelled.dlq"], "\(trace.stdoutText)")
            #expect(columns.map { $0[5] } == Self.flow.map(\.source) + ["order"])
            #expect(columns.map { $0[0] } == (0..<5).map { CLIReadTests.iso(start + Int64($0) * 100) } + [CLIReadTests.iso(start + 400)],
                    "the dead letter keeps the event's time")
            #expect(columns.map { $0[1] } == ["+0.000s", "+0.100s", "+0.100s", "+0.100s", "+0.100s", "+0.000s"])
            #expect(columns.map { $0.count > 6 ? $0[6] : "" } == ["", "", "FAILED", "COMPENSATION", "", "DEAD-LETTERED after 5 attempts: mail server down"])
            let partition = Partitioner.partition(forKey: Array("order-2".utf8), partitionCount: 3)
            #expect(columns[0][3].hasPrefix("\(partition)/"), "order-created holds order-2 in partition \(partition): \(columns[0])")

            let json = try await runSpool(["saga", "trace", "order-2", "--format", "json"] + broker)
            let steps = try json.stdoutLines.map { try JSONDecoder().decode(TracedStep.self, from: Data($0.utf8)) }
            #expect(steps.map(\.topic) == Self.flow.map(\.topic) + ["order-cancelled.dlq"], "\(json)")
            #expect(steps.map(\.role) == Self.flow.map(\.role.rawValue) + ["success"])
            #expect(steps.map(\.gapMilliseconds) == [0, 100, 100, 100, 100, 0])
            #expect(steps.last?.deadLetter == ["error": "mail server down", "attempts": "5"])
            #expect(steps.dropFirst().map(\.causationID) == Array(steps.prefix(4).map(\.eventID)) + [steps[3].eventID],
                    "each step is caused by the one before")

            let mermaid = try await runSpool(["saga", "trace", "order-2", "--format", "mermaid"] + broker)
            #expect(mermaid.stdoutLines.first == "sequenceDiagram", "\(mermaid)")
            #expect(mermaid.stdoutText.contains("-x") && mermaid.stdoutText.contains("-->>") && mermaid.stdoutText.contains("Note over"),
                    "\(mermaid.stdoutText)")
            #expect(mermaid.stdoutText.contains("participant S0 as order") && mermaid.stdoutText.contains("as payment-failed"), "\(mermaid.stdoutText)")

            let restricted = try await runSpool(["saga", "trace", "order-1", "--topics", "order-created,payment-failed"] + broker)
            #expect(restricted.stdoutLines.dropFirst().map { $0.split(separator: "\t")[2] } == ["order-created", "payment-failed"], "\(restricted)")
            let since = try await runSpool(["saga", "trace", "order-3", "--since", CLIReadTests.iso(start + 250)] + broker)
            #expect(since.stdoutLines.dropFirst().map { $0.split(separator: "\t")[2] } == ["stock-restored", "order-cancelled"], "\(since)")

            let nothing = try await runSpool(["saga", "trace", "order-404"] + broker)
            #expect(nothing.termination == .exited(1) && nothing.stderr == "spool: error: no event of saga 'order-404' found\n", "\(nothing)")
            let unknown = try await runSpool(["saga", "trace", "order-1", "--topics", "order-created,nope"] + broker)
            #expect(unknown.termination == .exited(1) && unknown.stderr == "spool: error: topic 'nope' does not exist\n", "\(unknown)")
        }
    }
}
