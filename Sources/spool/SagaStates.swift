import ArgumentParser
import Foundation
import Spool

extension Saga {
    /// `spool saga list`: the latest state of every orchestrated or supervised saga.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List orchestrated and supervised sagas with their latest state.",
            discussion: """
                Reads \(SagaStateChanged.topic), where orchestrators and supervisors publish every \
                change of their sagas keyed by saga id, and prints the latest change of each saga, \
                oldest first: saga id, definition and version, state, step, attempt, time of the \
                change, and the reason when it is compensating, compensated or parked.

                Examples:
                  spool saga list
                  spool saga list --state parked
                  spool saga list --state running,compensating --format json
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: ArgumentHelp("Only sagas in these states, comma-separated: \(SagaState.allCases.map(\.rawValue).joined(separator: ", ")).",
                                   valueName: "a,b"))
        var state: String?

        @Option(help: "Output: text (tab-separated columns) or json (one object per saga).")
        var format: SagaStateFormat = .text

        func validate() throws {
            _ = try states()
        }

        func run() async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                let wanted = try states()
                var latest: [String: SagaStateChange] = [:]
                for change in try await SagaStateLog(client: client).changes() { latest[change.event.sagaID] = change }
                let shown = latest.values.filter { wanted?.contains($0.event.state) ?? true }.sorted { ($0.time, $0.event.sagaID) < ($1.time, $1.event.sagaID) }
                switch format {
                case .text:
                    if !shown.isEmpty { print(["SAGA", "DEFINITION", "STATE", "STEP", "ATTEMPT", "CHANGED", "REASON"].joined(separator: "\t")) }
                    for change in shown {
                        let event = change.event
                        print([event.sagaID, "\(event.saga) v\(event.version)", event.state.rawValue, event.step ?? "-", String(event.attempt),
                               EventMetadata.formatTime(change.time), event.reason ?? "-"].joined(separator: "\t"))
                    }
                case .json:
                    for change in shown { printJSONLine(change) }
                }
            }
        }

        private func states() throws -> Set<SagaState>? {
            guard let state else { return nil }
            return Set(try state.split(separator: ",").map { name in
                let name = name.trimmingCharacters(in: .whitespaces)
                guard let state = SagaState(rawValue: name) else {
                    throw ValidationError("unknown saga state '\(name)'; one of \(SagaState.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return state
            })
        }
    }

    /// `spool saga show`: one saga's state and every change of it.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one orchestrated or supervised saga: its state, steps, deadline and history.",
            discussion: """
                Reads the saga's changes from \(SagaStateChanged.topic) (only the partition its id \
                keys to). Prints the state, the current step and attempt, when the awaited reply \
                is overdue, the reason, the steps done and undone, then one line per change: time, \
                gap since the previous change, state, step and what happened. Exit 1 when the saga \
                has no published state. `spool saga trace ID` shows the same saga's events on every topic.

                Example:
                  spool saga show order-42
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The saga's id (its correlation id).")
        var sagaID: String

        @Option(help: "Output: text, or json (one object per change).")
        var format: SagaStateFormat = .text

        func run() async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                let changes = try await SagaStateLog(client: client).changes(of: sagaID)
                guard let last = changes.last else { throw SpoolError(.invalidArgument, "no state of saga '\(sagaID)' in \(SagaStateChanged.topic)") }
                guard format == .text else {
                    for change in changes { printJSONLine(change) }
                    return
                }
                let event = last.event
                print("saga \(event.sagaID) (\(event.saga) v\(event.version)): \(event.state.rawValue)")
                if let step = event.step { print("step: \(step), attempt \(event.attempt)") }
                if let deadline = event.deadline {
                    let left = deadline - EventMetadata.now()
                    print("reply due: \(EventMetadata.formatTime(deadline)) (\(left >= 0 ? "in \(left / 1000)s" : "overdue by \(-left / 1000)s"))")
                }
                if let reason = event.reason { print("reason: \(reason)") }
                print("done: \(event.completedSteps.isEmpty ? "-" : event.completedSteps.joined(separator: ", "))")
                print("undone: \(event.compensatedSteps.isEmpty ? "-" : event.compensatedSteps.joined(separator: ", "))")
                print("history:")
                var previous = changes[0].time
                for change in changes {
                    print(["  " + EventMetadata.formatTime(change.time), SagaTimeline.gap(change.time - previous), change.event.state.rawValue,
                           change.event.step ?? "-", change.event.change].joined(separator: "\t"))
                    previous = change.time
                }
            }
        }
    }

    /// `spool saga retry` and `spool saga compensate`: a person's decision, sent as an event.
    struct Decide: ParsableArguments {
        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The saga's id (its correlation id).")
        var sagaID: String

        @Option(help: ArgumentHelp("Who decides, for the saga's history (default: $USER).", valueName: "name"))
        var by: String?

        /// Publishes `action` for the saga after checking its latest published state allows it.
        func send(_ action: SagaControl.Action) async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                guard let state = try await SagaStateLog(client: client).changes(of: sagaID).last?.event.state else {
                    throw SpoolError(.invalidArgument, "no state of saga '\(sagaID)' in \(SagaStateChanged.topic): nothing runs it")
                }
                let allowed: Set<SagaState> = action == .retry ? [.parked] : [.running, .parked]
                guard allowed.contains(state) else {
                    throw SpoolError(.invalidArgument, "saga '\(sagaID)' is \(state.rawValue); \(action.rawValue) applies to a saga that is "
                                         + allowed.map(\.rawValue).sorted().joined(separator: " or "))
                }
                let requestedBy = by ?? ProcessInfo.processInfo.environment["USER"] ?? "spool"
                let envelope = EventEnvelope(SagaControl(sagaID: sagaID, action: action, requestedBy: requestedBy), correlationID: sagaID,
                                             source: "spool")
                let record = try envelope.record()
                try await client.publish(to: SagaControl.topic, key: record.key, value: record.value, headers: record.headers)
                print("asked for \(action.rawValue) of saga \(sagaID) (\(state.rawValue)); follow it with: spool saga show \(sagaID)")
            }
        }
    }

    /// `spool saga retry`.
    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask the owner of a parked saga to try its failed step again.",
            discussion: """
                Publishes a \(SagaControl.eventType) event to \(SagaControl.topic). An orchestrator \
                sends the parked step's command (or its undo) again with fresh attempts; a \
                supervisor publishes the dead-lettered event again for the service that failed. \
                Refused unless the saga's latest state is parked. Nothing in a database is edited by hand.
                """
        )

        @OptionGroup var decision: Decide

        func run() async throws { try await decision.send(.retry) }
    }

    /// `spool saga compensate`.
    struct Compensate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask the owner of a running or parked saga to undo what it did.",
            discussion: """
                Publishes a \(SagaControl.eventType) event to \(SagaControl.topic); the owner undoes \
                the saga's steps, newest first, and ends it compensated. Refused unless the saga's \
                latest state is running or parked.
                """
        )

        @OptionGroup var decision: Decide

        func run() async throws { try await decision.send(.compensate) }
    }
}

extension Saga {
    /// `spool saga rules`: the supervisors' rule tables.
    struct Rules: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the rule table of each supervisor: which failure gets which answer.",
            discussion: """
                Reads \(SagaRules.topic), where each supervisor publishes its rules when it starts, \
                and prints the latest table of each (or of --supervisor): a header line, then one \
                line per rule, in the order they are tried: the service, the failure (an event it \
                emitted as failed, or one its handler dead-lettered) and the answer (compensate \
                with commands, retry with attempts and backoff, or escalate to a person).
                Exit 1 when no supervisor has published rules.

                Example:
                  spool saga rules --supervisor order-supervisor
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: ArgumentHelp("Only this supervisor's rules.", valueName: "name"))
        var supervisor: String?

        func run() async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                var latest: [String: EventEnvelope<SagaRules>] = [:]
                if let topic = try await client.topics([]).first(where: { $0.name == SagaRules.topic }) {
                    for partition in topic.partitions.map(\.partition) {
                        for record in try await client.records(of: topic.name, partition: partition, from: .earliest, key: supervisor.map { Array($0.utf8) }) {
                            guard let table = try? EventEnvelope<SagaRules>(record: record) else { continue }
                            latest[table.payload.supervisor] = table
                        }
                    }
                }
                guard !latest.isEmpty else {
                    throw SpoolError(.invalidArgument, supervisor.map { "supervisor '\($0)' has published no rules" } ?? "no supervisor has published rules")
                }
                for (index, table) in latest.values.sorted(by: { $0.payload.supervisor < $1.payload.supervisor }).enumerated() {
                    if index > 0 { print("") }
                    print("supervisor \(table.payload.supervisor) (flow \(table.payload.flow)), rules of \(EventMetadata.formatTime(table.metadata.time))")
                    print(["SERVICE", "FAILURE", "ACTION"].joined(separator: "\t"))
                    for rule in table.payload.rules { print([rule.service, rule.failure, rule.action].joined(separator: "\t")) }
                }
            }
        }
    }
}

/// How `spool saga list` and `show` print.
enum SagaStateFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// One published change of a saga, with the time it was published; as JSON, the event's fields
/// plus `time` (ISO 8601) and `timeMilliseconds`.
struct SagaStateChange: Encodable {
    var time: Int64
    var event: SagaStateChanged

    private enum TimeKeys: String, CodingKey { case time, timeMilliseconds }

    func encode(to encoder: any Encoder) throws {
        try event.encode(to: encoder)
        var container = encoder.container(keyedBy: TimeKeys.self)
        try container.encode(EventMetadata.formatTime(time), forKey: .time)
        try container.encode(time, forKey: .timeMilliseconds)
    }
}

/// Prints `value` as one line of JSON, keys sorted (strings, numbers and arrays of them: it
/// cannot fail to encode).
func printJSONLine(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
}

/// The saga states topic, read back.
struct SagaStateLog {
    let client: SpoolClient

    /// Every change published for `sagaID` (or for every saga when nil), in order of publication
    /// per saga; empty when the topic does not exist yet. Records that are not state changes are skipped.
    func changes(of sagaID: String? = nil) async throws(SpoolError) -> [SagaStateChange] {
        guard let topic = try await client.topics([]).first(where: { $0.name == SagaStateChanged.topic }) else { return [] }
        let key = sagaID.map { Array($0.utf8) }
        let partitions = key.map { [Partitioner.partition(forKey: $0, partitionCount: Int32(topic.partitions.count))] }
            ?? topic.partitions.map(\.partition)
        var changes: [SagaStateChange] = []
        for partition in partitions {
            for record in try await client.records(of: topic.name, partition: partition, from: .earliest, key: key) {
                guard let envelope = try? EventEnvelope<SagaStateChanged>(record: record) else { continue }
                changes.append(SagaStateChange(time: envelope.metadata.time, event: envelope.payload))
            }
        }
        return changes
    }
}
