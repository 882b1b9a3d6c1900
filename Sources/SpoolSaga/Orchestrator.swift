import Foundation
import GRDB
import Logging
import Spool
import Synchronization

/// Runs orchestrated sagas: sends each step's command to its participant, waits for the reply,
/// goes on to the next step, and when a step fails (or never answers) sends the compensating
/// commands of the steps already done, newest first.
///
/// ```swift
/// let orders = try SagaParticipant(name: "order", client: client, database: dbPool)
/// let orchestrator = Orchestrator(participant: orders)
/// orchestrator.register(placeOrder)                    // a SagaDefinition
/// try await orders.transaction { context in
///     try context.db.execute(sql: "INSERT INTO orders ...")
///     try orchestrator.start(placeOrder, id: orderID, data: OrderData(...), in: context)
/// }
/// try await orchestrator.run()                         // until the task is cancelled
/// ```
///
/// How it holds:
/// - **One row per instance.** `spool_sagas` holds each instance's definition and version,
///   state, current step, attempt, data, deadline and the steps done and undone;
///   `spool_saga_history` every change with its time. Both change in the same local transaction
///   as the outbox rows of the commands sent and the inbox entry of the reply handled, so an
///   orchestrator killed at any point resumes where its database says, mid-step or
///   mid-compensation.
/// - **Correlation.** Commands carry the saga id as correlation id; a reply counts only if it
///   answers the command the instance awaits (its causation id). Late replies (to a command
///   sent before a timeout, to a saga that moved on or ended) and duplicates change nothing.
/// - **Timeouts.** An awaited reply has a deadline in the row; past it the command is sent
///   again, the same event (the participant's inbox has it and repeats its reply), up to the
///   step's attempts; then a step counts as failed and is undone with the others, and an undo
///   that never answers parks the saga for a person (`spool saga retry|compensate ID`).
/// - **Visibility.** Every change is also a ``SagaStateChanged`` event on `spool.saga-states`,
///   keyed by saga id, emitted in the same transaction: `spool saga list` and `spool saga show`
///   read it.
/// - **Control.** ``SagaControl`` events (`spool saga retry|compensate ID`) move the orchestrator's
///   own sagas on: retry sends a parked saga's command again; compensate undoes a running or
///   parked saga.
public final class Orchestrator: Sendable {
    /// The participant whose database, inbox, outbox and consumer group the orchestrator uses.
    public let participant: SagaParticipant
    private let engine: OrchestratorEngine

    /// An orchestrator on `participant` (which may also have handlers of its own). Registers the
    /// handler of ``SagaControl`` on `participant`.
    public init(participant: SagaParticipant, logger: Logger = Logger(label: "spool.saga.orchestrator")) {
        self.participant = participant
        var logger = logger
        logger[metadataKey: "service"] = "\(participant.name)"
        engine = OrchestratorEngine(logger: logger)
        participant.on(SagaControl.self) { [engine] event, context in try engine.control(event.payload, in: context) }
    }

    /// What the orchestrator did since it was created.
    public var statistics: OrchestratorStatistics { engine.counters.withLock { $0 } }

    /// Makes `definition` runnable here and subscribes to its reply topics. One definition per
    /// name; register before ``run()``.
    public func register<SagaData>(_ definition: SagaDefinition<SagaData>) {
        let newReplies = engine.register(definition)
        for reply in newReplies {
            participant.on(eventType: reply.type, topic: reply.topic) { [engine] metadata, value, context in
                try engine.replied(metadata, value, in: context)
            }
        }
    }

    /// Starts an instance of `definition` with id `id` (its correlation id) in the caller's local
    /// transaction: the instance's row and its first command are stored with whatever else
    /// `context` writes, or none of it is. Throws ``SpoolError/Code/invalidArgument`` if the
    /// definition is not registered or an instance `id` exists already.
    public func start<SagaData>(_ definition: SagaDefinition<SagaData>, id: String, data: SagaData, in context: SagaContext) throws {
        try engine.start(definition, id: id, data: try SagaDefinition<SagaData>.encode(data), in: context)
    }

    /// Starts an instance in a transaction of its own; see ``start(_:id:data:in:)``.
    public func start<SagaData>(_ definition: SagaDefinition<SagaData>, id: String, data: SagaData) async throws {
        let encoded = try SagaDefinition<SagaData>.encode(data)
        try await participant.transaction { [engine] context in try engine.start(definition, id: id, data: encoded, in: context) }
    }

    /// The instance `id` as stored, with its history; nil if there is none.
    public func instance(_ id: String) async throws -> SagaInstance? {
        try await participant.database.read { db in
            guard let row = try SagaInstances.load(db, id: id) else { return nil }
            let names = self.engine.definition(of: row)?.stepNames
            return SagaInstance(id: row.id, definition: row.definition, version: row.version, state: row.state,
                                step: names.map { $0[row.step] }, attempt: row.attempt, deadline: row.deadline, reason: row.reason,
                                completedSteps: row.completedSteps, compensatedSteps: row.compensatedSteps, startedAt: row.startedAt,
                                history: try SagaInstances.history(db, sagaID: id))
        }
    }

    /// Runs the participant (replies, control events, the outbox) and watches the deadlines,
    /// until the task is cancelled; throws what stops ``SagaParticipant/run()``.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.participant.run() }
            group.addTask { await self.watchDeadlines() }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    /// Overdue instances handled per transaction.
    private static let deadlineBatch = 100

    /// Every poll interval, handles the instances whose reply is overdue.
    private func watchDeadlines() async {
        while !Task.isCancelled {
            do {
                let now = EventMetadata.now()
                var overdue = try await participant.database.read { db in try SagaInstances.overdue(db, now: now, limit: Self.deadlineBatch) }
                while !overdue.isEmpty, !Task.isCancelled {
                    try await participant.transaction { [engine, overdue] context in
                        for id in overdue { try engine.timedOut(id, now: now, in: context) }
                    }
                    guard overdue.count == Self.deadlineBatch else { break }
                    overdue = try await participant.database.read { db in try SagaInstances.overdue(db, now: now, limit: Self.deadlineBatch) }
                }
            } catch {
                engine.logger.warning("handling overdue replies failed; retrying at the next poll", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: participant.configuration.pollInterval)
        }
    }
}

/// An orchestrated saga as its orchestrator stores it.
public struct SagaInstance: Sendable, Hashable {
    /// The saga id (its correlation id).
    public var id: String
    /// The definition's name and version.
    public var definition: String
    public var version: Int
    /// Where it stands.
    public var state: SagaState
    /// The step being done or undone (or last done), by name; nil if the definition is not registered.
    public var step: String?
    /// Sends of the current command so far.
    public var attempt: Int
    /// When the awaited reply is overdue (ms since the epoch); nil when nothing is awaited.
    public var deadline: Int64?
    /// Why it is compensating, compensated or parked.
    public var reason: String?
    /// Steps done, in order; steps undone, in order of undoing.
    public var completedSteps: [String]
    public var compensatedSteps: [String]
    /// When it started (ms since the epoch).
    public var startedAt: Int64
    /// Every change, oldest first.
    public var history: [Change]

    /// One change of an instance.
    public struct Change: Sendable, Hashable {
        /// When (ms since the epoch).
        public var time: Int64
        /// The state after it.
        public var state: SagaState
        /// The step it concerned.
        public var step: String?
        /// What happened.
        public var change: String
    }
}

/// Counts of what an ``Orchestrator`` did since it was created.
public struct OrchestratorStatistics: Sendable, Hashable {
    /// Instances started.
    public var started = 0
    /// Instances ended completed, and ended compensated.
    public var completed = 0
    public var compensated = 0
    /// Times an instance was parked.
    public var parked = 0
    /// Deadlines that passed (each sends again, fails the step or parks).
    public var timeouts = 0
    /// Replies that changed nothing: late, duplicate, or for a saga that moved on or ended.
    public var staleReplies = 0
}

/// The orchestrator's transitions, each run inside a local transaction (a ``SagaContext``).
/// Kept apart from ``Orchestrator`` so the participant's handlers can hold it without holding
/// the participant.
final class OrchestratorEngine: Sendable {
    let logger: Logger
    let counters = Mutex(OrchestratorStatistics())
    private let definitions = Mutex<[String: any OrchestratedSaga]>([:])
    private let replyTypes = Mutex<Set<String>>([])

    init(logger: Logger) {
        self.logger = logger
    }

    /// Adds `saga`; returns the reply types not subscribed to yet.
    func register(_ saga: any OrchestratedSaga) -> [(type: String, topic: String)] {
        definitions.withLock { definitions in
            precondition(definitions[saga.name] == nil, "a second saga definition named '\(saga.name)'")
            definitions[saga.name] = saga
        }
        return replyTypes.withLock { known in saga.replyTypes.filter { known.insert($0.type).inserted } }
    }

    /// The registered definition an instance runs on; nil if its name or version is not registered.
    func definition(of row: InstanceRow) -> (any OrchestratedSaga)? {
        definitions.withLock { $0[row.definition] }.flatMap { $0.version == row.version ? $0 : nil }
    }

    func start(_ saga: any OrchestratedSaga, id: String, data: Data, in context: SagaContext) throws {
        guard definitions.withLock({ $0[saga.name] }) != nil else {
            throw SpoolError(.invalidArgument, "saga definition '\(saga.name)' is not registered with this orchestrator")
        }
        guard try !SagaInstances.exists(context.db, id: id) else { throw SpoolError(.invalidArgument, "saga '\(id)' exists already") }
        var row = InstanceRow(id: id, definition: saga.name, version: saga.version, state: .running, undoing: false, step: 0, attempt: 0,
                              commandID: nil, data: data, deadline: nil, reason: nil, completedSteps: [], compensatedSteps: [],
                              startedAt: EventMetadata.now())
        try SagaInstances.insert(context.db, row)
        try send(&row, saga, resending: false, change: "started", in: context)
        counters.withLock { $0.started += 1 }
    }

    /// A reply arrived: it moves the instance on if it answers the command the instance awaits.
    func replied(_ reply: EventMetadata, _ value: [UInt8], in context: SagaContext) throws {
        guard var row = try SagaInstances.load(context.db, id: reply.correlationID), !row.state.isFinal,
              let awaited = row.commandID, awaited == reply.causationID else {
            counters.withLock { $0.staleReplies += 1 }
            logger.debug("a reply that answers nothing awaited; ignored",
                         metadata: ["saga": "\(reply.correlationID)", "event": "\(reply.eventType)", "id": "\(reply.eventID)"])
            return
        }
        guard let saga = definition(of: row) else { return try parkUnknown(&row, in: context) }
        let name = saga.stepNames[row.step]
        if row.undoing {
            row.compensatedSteps.append(name)
            return try compensate(&row, saga, below: row.step, change: "\(name) undone", in: context)
        }
        let verdict: StepVerdict
        (verdict, row.data) = try saga.judge(step: row.step, reply: reply, value: value, data: row.data)
        switch verdict {
        case .success:
            row.completedSteps.append(name)
            guard row.step + 1 < saga.stepNames.count else { return try finish(&row, saga, .completed, change: "\(name) succeeded", in: context) }
            row.step += 1
            row.state = .running
            row.attempt = 0
            try send(&row, saga, resending: false, change: "\(name) succeeded", in: context)
        case .failure(let reason):
            row.reason = "\(name) failed: \(reason)"
            try compensate(&row, saga, below: row.step, change: "\(name) failed", in: context)
        }
    }

    /// The deadline of instance `id` may have passed: send again, fail the step, or park.
    func timedOut(_ id: String, now: Int64, in context: SagaContext) throws {
        guard var row = try SagaInstances.load(context.db, id: id), let deadline = row.deadline, deadline <= now else { return }
        counters.withLock { $0.timeouts += 1 }
        guard let saga = definition(of: row) else { return try parkUnknown(&row, in: context) }
        let name = saga.stepNames[row.step]
        let what = row.undoing ? "undoing \(name)" : name
        let attempts = saga.attempts(of: row.step)
        if row.attempt < attempts {
            try send(&row, saga, resending: true, change: "\(what) timed out; sent again (attempt \(row.attempt + 1) of \(attempts))", in: context)
        } else if !row.undoing {
            // The step may have been done and its reply lost: it is undone with the others.
            row.reason = "\(name) did not answer (\(attempts) attempt\(attempts == 1 ? "" : "s"))"
            try compensate(&row, saga, below: row.step + 1, change: "\(name) timed out", in: context)
        } else {
            try park(&row, names: saga.stepNames, reason: "undoing \(name) did not answer (\(attempts) attempt\(attempts == 1 ? "" : "s"))",
                     in: context)
        }
    }

    /// A person's decision; ignored for a saga this orchestrator does not have.
    func control(_ request: SagaControl, in context: SagaContext) throws {
        guard var row = try SagaInstances.load(context.db, id: request.sagaID) else { return }
        guard let saga = definition(of: row) else { return try parkUnknown(&row, in: context) }
        let asked = "\(request.action.rawValue) requested by \(request.requestedBy)"
        // A parked saga resumes what it was doing (a parked undo goes on undoing, whichever was
        // asked); a running one can only be compensated; anything else stays as it is.
        if row.state == .parked, request.action == .retry || row.undoing {
            row.state = row.undoing ? .compensating : .running
            row.attempt = 0
            try send(&row, saga, resending: true, change: asked, in: context)
        } else if request.action == .compensate, row.state == .running || row.state == .parked {
            row.reason = asked
            try compensate(&row, saga, below: row.step + 1, change: asked, in: context)
        } else {
            try save(row, names: saga.stepNames, change: "\(asked): ignored, the saga is \(row.state.rawValue)", in: context)
        }
    }

    // MARK: Transitions

    /// Sends the current step's command (its compensation when undoing), counts the attempt,
    /// sets the deadline, and saves.
    private func send(_ row: inout InstanceRow, _ saga: any OrchestratedSaga, resending: Bool, change: String, in context: SagaContext) throws {
        row.attempt += 1
        row.commandID = try saga.send(step: row.step, undo: row.undoing, data: row.data, sagaID: row.id,
                                      eventID: resending ? row.commandID : nil, in: context)
        row.deadline = EventMetadata.now() + saga.timeout(of: row.step).wholeMilliseconds
        try save(row, names: saga.stepNames, change: change, in: context)
    }

    /// Undoes the newest step below `limit` that can be undone, or ends the saga compensated
    /// when none is left.
    private func compensate(_ row: inout InstanceRow, _ saga: any OrchestratedSaga, below limit: Int, change: String,
                            in context: SagaContext) throws {
        guard let next = (0..<limit).reversed().first(where: saga.canUndo) else {
            return try finish(&row, saga, .compensated, change: change, in: context)
        }
        row.state = .compensating
        row.undoing = true
        row.step = next
        row.attempt = 0
        try send(&row, saga, resending: false, change: "\(change); undoing \(saga.stepNames[next])", in: context)
    }

    private func finish(_ row: inout InstanceRow, _ saga: any OrchestratedSaga, _ state: SagaState, change: String,
                        in context: SagaContext) throws {
        row.state = state
        row.commandID = nil
        row.deadline = nil
        try saga.end(sagaID: row.id, data: row.data, state: state, reason: row.reason, in: context)
        try save(row, names: saga.stepNames, change: "\(change); \(state.rawValue)", in: context)
        counters.withLock { state == .completed ? ($0.completed += 1) : ($0.compensated += 1) }
    }

    /// Stops the instance until a person decides (``SagaControl``); the awaited command is kept,
    /// so a retry sends the same event again.
    private func park(_ row: inout InstanceRow, names: [String]?, reason: String, in context: SagaContext) throws {
        row.state = .parked
        row.deadline = nil
        row.reason = reason
        try save(row, names: names, change: "parked: \(reason)", in: context)
        counters.withLock { $0.parked += 1 }
    }

    private func parkUnknown(_ row: inout InstanceRow, in context: SagaContext) throws {
        guard row.state != .parked else { return }
        logger.error("a saga's definition is not registered here; parked", metadata: ["saga": "\(row.id)", "definition": "\(row.definition)"])
        try park(&row, names: nil, reason: "definition '\(row.definition)' version \(row.version) is not registered with this orchestrator",
                 in: context)
    }

    /// Stores `row`, appends `change` to its history and publishes it as a ``SagaStateChanged``.
    private func save(_ row: InstanceRow, names: [String]?, change: String, in context: SagaContext) throws {
        try SagaInstances.update(context.db, row)
        try context.recordChange(SagaStateChanged(sagaID: row.id, saga: row.definition, version: row.version, state: row.state,
                                                  step: names.map { $0[row.step] }, attempt: row.attempt, deadline: row.deadline, change: change,
                                                  reason: row.reason, completedSteps: row.completedSteps, compensatedSteps: row.compensatedSteps))
    }
}

extension SagaContext {
    /// Appends `change` to its saga's history and publishes it to `spool.saga-states` (role
    /// failure while compensating or parked, compensation once compensated), in this transaction.
    func recordChange(_ change: SagaStateChanged) throws {
        try SagaInstances.appendHistory(db, sagaID: change.sagaID, state: change.state, step: change.step, change: change.change,
                                        time: EventMetadata.now())
        let role: EventRole = switch change.state {
        case .compensating, .parked: .failure
        case .compensated: .compensation
        case .running, .completed: .success
        }
        try emit(change, role: role, correlationID: change.sagaID)
    }
}
