import Foundation
import GRDB
import Logging
import Spool
import Synchronization

/// Answers failure reports with the answers declared for them in advance: the supervisor
/// design of sagas. Services report failures as events (role ``EventRole/failure``) or by
/// dead-lettering an event their handler gave up on; the supervisor finds the rule for the
/// service and the event, and compensates (sends the declared commands), retries (publishes the
/// dead-lettered event again, so only the service that failed handles it again) or escalates
/// (parks the saga for a person).
///
/// ```swift
/// let supervisor = try Supervisor(participant: SagaParticipant(name: "order-supervisor", client: client, database: db),
///                                 flow: "order", rules: [
///     .failed(PaymentFailed.self, from: "balance", .compensate([.send { CancelCoupon(orderID: $0.sagaID) }])),
///     .deadLettered(OrderPaid.self, by: "order", .retry(attempts: 3, backoff: .seconds(1))),
///     .deadLettered(RiderRequested.self, by: "delivery", .escalate),
/// ])
/// try await supervisor.run()
/// ```
///
/// How it holds:
/// - **Idempotent.** Each report goes through the participant's inbox (a dead letter by its
///   event id and its place in the dead-letter topic, so the same event failing again is a new
///   report), and the decision, its commands and the saga's row are one local transaction.
/// - **Survives restarts.** A retry waiting for its backoff is a row of the kit's timeouts
///   table; a supervisor stopped during the wait publishes it when it starts again.
/// - **Visible.** Each decision is a ``SagaStateChanged`` on `spool.saga-states` keyed by saga id
///   (so `spool saga list|show|trace` show it); the rule table is a ``SagaRules`` event on
///   `spool.saga-rules`, published at each start (`spool saga rules`).
/// - **A person decides what escalates.** ``SagaControl`` retry publishes a parked saga's
///   dead-lettered event again (attempts start over); compensate sends the rule's compensation.
/// - A report no rule matches parks its saga; a report for a saga that ended is recorded and ignored.
public final class Supervisor: Sendable {
    /// The participant whose database, inbox, outbox and consumer group the supervisor uses.
    /// It cannot also be an ``Orchestrator``'s.
    public let participant: SagaParticipant
    /// The name of the flow it supervises, as its sagas' states carry it.
    public let flow: String
    /// The rule table, in the order rules are tried.
    public let rules: [SupervisorRule]
    private let engine: SupervisorEngine

    /// A supervisor applying `rules` to the reports they name, on `participant`. Registers the
    /// participant's handlers of those reports and of ``SagaControl``. Two rules for the same
    /// service and report are a programming error.
    public init(participant: SagaParticipant, flow: String, rules: [SupervisorRule], logger: Logger = Logger(label: "spool.saga.supervisor")) {
        precondition(Set(rules.map { "\($0.service) \($0.topic) \($0.eventType)" }).count == rules.count,
                     "supervisor \(participant.name): two rules for the same service and report")
        self.participant = participant
        self.flow = flow
        self.rules = rules
        var logger = logger
        logger[metadataKey: "service"] = "\(participant.name)"
        engine = SupervisorEngine(flow: flow, rules: rules, logger: logger)
        var subscribed = Set<String>()
        for rule in rules where subscribed.insert("\(rule.topic) \(rule.eventType)").inserted {
            let deadLetter = rule.isDeadLetter
            participant.on(eventType: rule.eventType, topic: rule.topic, inboxID: deadLetter ? Self.deadLetterInboxID : nil) {
                [engine] metadata, value, context in try engine.reported(metadata, value, deadLetter: deadLetter, in: context)
            }
        }
        participant.on(SagaControl.self) { [engine] event, context in try engine.control(event.payload, in: context) }
    }

    /// A dead letter's inbox entry: its event id and where it was dead-lettered, so the same
    /// event dead-lettered again after a retry is a new report.
    @Sendable private static func deadLetterInboxID(_ record: SpoolRecord, _ metadata: EventMetadata) -> String {
        "\(metadata.eventID)@\(record.topic)/\(record.partition)@\(record.offset)"
    }

    /// What the supervisor decided since it was created.
    public var statistics: SupervisorStatistics { engine.counters.withLock { $0 } }

    /// The saga `id` as this supervisor stores it, with its history; nil if it never had a report of it.
    public func saga(_ id: String) async throws -> SagaInstance? {
        try await participant.database.read { db in
            guard let row = try SupervisedSagas.load(db, sagaID: id) else { return nil }
            return SagaInstance(id: id, definition: row.flow, version: 1, state: row.state, step: "\(row.service): \(row.eventType)",
                                attempt: row.attempt, deadline: nil, reason: row.reason, completedSteps: [], compensatedSteps: row.compensations,
                                startedAt: row.startedAt, history: try SagaInstances.history(db, sagaID: id))
        }
    }

    /// Publishes the rule table, then runs the participant until the task is cancelled; throws
    /// what stops ``SagaParticipant/run()``.
    public func run() async throws {
        let table = SagaRules(supervisor: participant.name, flow: flow, rules: rules.map(\.published))
        try await participant.transaction { [name = participant.name] context in _ = try context.emit(table, correlationID: name) }
        try await participant.run()
    }
}

/// Counts of what a ``Supervisor`` decided since it was created.
public struct SupervisorStatistics: Sendable, Hashable {
    /// Reports handled (each once).
    public var reports = 0
    /// Reports answered by compensating, by a retry, and by parking the saga.
    public var compensated = 0
    public var retried = 0
    public var parked = 0
    /// Reports about sagas that had ended, recorded and ignored.
    public var ignored = 0
}

/// The supervisor's decisions, each run inside the local transaction of the report or control
/// event (a ``SagaContext``).
final class SupervisorEngine: Sendable {
    let flow: String
    let rules: [SupervisorRule]
    let logger: Logger
    let counters = Mutex(SupervisorStatistics())

    init(flow: String, rules: [SupervisorRule], logger: Logger) {
        self.flow = flow
        self.rules = rules
        self.logger = logger
    }

    /// A failure report arrived: find its rule and apply it.
    func reported(_ metadata: EventMetadata, _ value: [UInt8], deadLetter: Bool, in context: SagaContext) throws {
        guard let record = context.triggerRecord else { preconditionFailure("a failure report is handled without its record") }
        let headers = record.headers
        let service = deadLetter ? headers.text(of: DeadLetterHeaderName.group) ?? "?" : metadata.source
        let report = FailureReport(sagaID: metadata.correlationID, service: service, eventType: metadata.eventType, isDeadLetter: deadLetter,
                                   error: deadLetter ? headers.text(of: DeadLetterHeaderName.error) : nil, metadata: metadata, value: value)
        // A dead letter is kept as the event was first published, to publish it again.
        let failed = deadLetter
            ? (String(record.topic.dropLast(".dlq".count)),
               OutgoingRecord(key: record.key, value: value, headers: headers.filter { !$0.name.hasPrefix(DeadLetterHeaderName.prefix) }))
            : (record.topic, OutgoingRecord(key: record.key, value: value, headers: headers))
        counters.withLock { $0.reports += 1 }
        var row = try SupervisedSagas.load(context.db, sagaID: report.sagaID)
            ?? SupervisedRow(sagaID: report.sagaID, flow: flow, state: .running, service: service, eventType: report.eventType,
                             isDeadLetter: deadLetter, eventID: metadata.eventID, attempt: 0, reason: nil, compensations: [], failed: failed,
                             startedAt: EventMetadata.now())
        if row.state.isFinal {
            counters.withLock { $0.ignored += 1 }
            return try save(row, change: "\(report.summary): ignored, the saga is \(row.state.rawValue)", in: context)
        }
        if row.eventID != metadata.eventID || row.isDeadLetter != deadLetter { row.attempt = 0 }  // another failure: its own retries
        (row.service, row.eventType, row.isDeadLetter, row.eventID, row.failed) = (service, report.eventType, deadLetter, metadata.eventID, failed)
        guard let rule = rules.first(where: { $0.matches(report) }) else {
            logger.error("a failure no rule answers; saga parked", metadata: ["saga": "\(report.sagaID)", "failure": "\(report.summary)"])
            return try park(&row, reason: "\(report.summary): no rule answers it", in: context)
        }
        switch rule.action {
        case .compensate(let commands):
            row.reason = report.summary
            try compensate(&row, commands, report: report, change: report.summary, in: context)
        case .retry(let attempts, let backoff):
            guard row.attempt < attempts else {
                return try park(&row, reason: "\(report.summary): still failing after \(attempts) retr\(attempts == 1 ? "y" : "ies")", in: context)
            }
            row.attempt += 1
            let delay = backoff * (1 << Swift.min(row.attempt - 1, 4))
            try retry(&row, after: delay, change: "\(report.summary): retry \(row.attempt) of \(attempts) in \(delay.wholeMilliseconds) ms",
                      in: context)
        case .escalate:
            try park(&row, reason: "\(report.summary): escalated", in: context)
        }
    }

    /// A person's decision; ignored for a saga this supervisor never had a report of.
    func control(_ request: SagaControl, in context: SagaContext) throws {
        guard var row = try SupervisedSagas.load(context.db, sagaID: request.sagaID) else { return }
        let asked = "\(request.action.rawValue) requested by \(request.requestedBy)"
        switch request.action {
        case .retry where row.state == .parked && row.isDeadLetter:
            row.attempt = 0
            try retry(&row, after: .zero, change: asked, in: context)
        case .compensate where row.state == .parked || row.state == .running:
            // The rule and the commands are those of the last report, whose event the row keeps.
            let report = try Self.lastReport(of: row)
            let commands = rules.first { $0.matches(report) }?.action.compensation ?? []
            guard !commands.isEmpty else { return try save(row, change: "\(asked): ignored, no compensation is declared for it", in: context) }
            row.reason = asked
            try compensate(&row, commands, report: report, change: asked, in: context)
        default:
            try save(row, change: "\(asked): ignored, the saga is \(row.state.rawValue)\(!row.isDeadLetter && request.action == .retry ? " and its failure is not a dead letter" : "")",
                     in: context)
        }
    }

    /// The report `row` last answered, rebuilt from the event it keeps (without a dead letter's error).
    private static func lastReport(of row: SupervisedRow) throws -> FailureReport {
        guard let metadata = try EventMetadata(headers: row.failed.record.headers) else {
            throw PermanentFailure("saga \(row.sagaID): the stored failure is not an event")
        }
        return FailureReport(sagaID: row.sagaID, service: row.service, eventType: row.eventType, isDeadLetter: row.isDeadLetter, error: nil,
                             metadata: metadata, value: row.failed.record.value)
    }

    // MARK: Transitions

    private func compensate(_ row: inout SupervisedRow, _ commands: [SupervisorCommand], report: FailureReport, change: String,
                            in context: SagaContext) throws {
        for command in commands { try command.emit(report, context) }
        row.state = .compensated
        row.compensations += commands.map(\.eventType)
        try save(row, change: "\(change); compensate: \(commands.map(\.eventType).joined(separator: ", "))", in: context)
        counters.withLock { $0.compensated += 1 }
    }

    /// Schedules the dead-lettered record to be published again to its topic after `delay`,
    /// the same event (id and headers) so that only the service that failed handles it again.
    private func retry(_ row: inout SupervisedRow, after delay: Duration, change: String, in context: SagaContext) throws {
        try SagaStore.scheduleTimeout(context.db, record: row.failed.record, topic: row.failed.topic, eventID: row.eventID, correlationID: row.sagaID,
                                      eventType: "spool-supervisor-retry", due: EventMetadata.now() + delay.wholeMilliseconds, role: nil)
        row.state = .running
        row.reason = nil
        try save(row, change: change, in: context)
        counters.withLock { $0.retried += 1 }
    }

    private func park(_ row: inout SupervisedRow, reason: String, in context: SagaContext) throws {
        row.state = .parked
        row.reason = reason
        try save(row, change: "parked: \(reason)", in: context)
        counters.withLock { $0.parked += 1 }
    }

    private func save(_ row: SupervisedRow, change: String, in context: SagaContext) throws {
        try SupervisedSagas.save(context.db, row)
        try context.recordChange(SagaStateChanged(sagaID: row.sagaID, saga: row.flow, version: 1, state: row.state,
                                                  step: "\(row.service): \(row.eventType)", attempt: row.attempt, deadline: nil, change: change,
                                                  reason: row.reason, completedSteps: [], compensatedSteps: row.compensations))
    }
}
