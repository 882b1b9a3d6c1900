import Foundation
import Spool

/// What a step's reply says: the step is done, or it failed and the saga compensates.
public enum StepVerdict: Sendable, Hashable {
    /// The participant did the step.
    case success
    /// The participant refused (no stock, no money): the saga undoes the steps done before it.
    case failure(reason: String)
}

/// An orchestrated saga: the steps an ``Orchestrator`` runs in order, each a command to one
/// participant and its reply, and for the steps that can be undone, the command that undoes
/// them. `SagaData` is the saga's own state (the order, the amounts), stored with each instance and
/// updated by the replies.
///
/// ```swift
/// let placeOrder = SagaDefinition<OrderData>(name: "place-order", steps: [
///     .init("reserve-stock", send: { ReserveStock(orderID: $0.orderID, quantity: $0.quantity) },
///           onReply: { reply, _ in reply.reserved ? .success : .failure(reason: reply.reason) })
///         .compensated { ReleaseStock(orderID: $0.orderID) },
///     .init("debit", send: { Debit(orderID: $0.orderID, amount: $0.amount) },
///           onReply: { reply, data in data.paid = reply.amount; return .success }),
/// ], onEnd: { outcome, context in /* mark the order COMPLETED or CANCELLED, with outcome.reason */ })
/// ```
///
/// Commands are built from the data alone (`send` and the compensation must be pure functions of
/// it): a command sent again after a timeout is built again, with the same event id, so the
/// participant's inbox recognises it and repeats its reply.
public struct SagaDefinition<SagaData: Codable & Sendable>: Sendable {
    /// The definition's name, stored with each instance.
    public let name: String
    /// Its version, stored with each instance: an instance is moved on only by the same version.
    public let version: Int
    /// The steps, in order.
    public let steps: [Step]
    /// Runs in the transaction that ends an instance (``SagaState/completed`` or
    /// ``SagaState/compensated``): where the service records the outcome.
    public let onEnd: (@Sendable (SagaOutcome<SagaData>, SagaContext) throws -> Void)?

    /// A definition; `name` follows the topic-name rules. There must be at least one step.
    public init(name: String, version: Int = 1, steps: [Step],
                onEnd: (@Sendable (SagaOutcome<SagaData>, SagaContext) throws -> Void)? = nil) {
        precondition(!steps.isEmpty, "saga '\(name)' has no step")
        precondition(Set(steps.map(\.name)).count == steps.count, "saga '\(name)' has two steps of the same name")
        self.name = name
        self.version = version
        self.steps = steps
        self.onEnd = onEnd
    }

    /// One step: the command to send, what its reply means, how long to wait for it, and how
    /// to undo the step.
    public struct Step: Sendable {
        /// The step's name, in the instance's history and in `spool saga show`.
        public let name: String
        /// How long to wait for a reply before sending the command again.
        public let timeout: Duration
        /// Sends of the command in all before the step counts as failed ("did not answer") and
        /// the saga compensates, this step included (it may have been done, its reply lost).
        public let attempts: Int
        let command: Command
        let judge: @Sendable (EventMetadata, [UInt8], inout SagaData) throws -> StepVerdict
        /// The command that undoes the step; nil for a step nothing undoes.
        let compensation: Command?

        /// A step sending `send(data)` and judging its reply with `onReply` (which may update
        /// the data); waits `timeout` for a reply, sends `attempts` times in all.
        public init<C: SagaCommand>(_ name: String, timeout: Duration = .seconds(10), attempts: Int = 3,
                                    send: @escaping @Sendable (SagaData) -> C,
                                    onReply: @escaping @Sendable (C.Reply, inout SagaData) throws -> StepVerdict) {
            precondition(attempts >= 1, "step '\(name)': attempts must be at least 1")
            self.name = name
            self.timeout = timeout
            self.attempts = attempts
            self.command = Command(send)
            self.judge = { metadata, value, data in
                let reply: C.Reply
                do throws(SpoolError) {
                    reply = try EventEnvelope<C.Reply>(metadata: metadata, value: value).payload
                } catch {
                    throw PermanentFailure(error.message)
                }
                return try onReply(reply, &data)
            }
            self.compensation = nil
        }

        private init(_ step: Step, compensation: Command) {
            self.name = step.name
            self.timeout = step.timeout
            self.attempts = step.attempts
            self.command = step.command
            self.judge = step.judge
            self.compensation = compensation
        }

        /// This step, undone by `undo(data)` when a later step fails (or this one does not
        /// answer). Any reply to it counts as undone; it is sent with the step's timeout and
        /// attempts, and a compensation that never answers parks the saga. A step that timed
        /// out is undone too, so the undo may reach the participant before the command it
        /// undoes: the participant remembers the undo, and the late command then does nothing.
        public func compensated<K: SagaCommand>(by undo: @escaping @Sendable (SagaData) -> K) -> Step {
            Step(self, compensation: Command(undo))
        }
    }

    /// A command type-erased: its reply's type and topic, and how to emit it for some data
    /// (with role ``EventRole/compensation`` when it undoes a step).
    struct Command: Sendable {
        let replyType: String
        let replyTopic: String
        let emit: @Sendable (SagaData, _ sagaID: String, _ eventID: String?, EventRole, SagaContext) throws -> String

        init<C: SagaCommand>(_ build: @escaping @Sendable (SagaData) -> C) {
            replyType = C.Reply.eventType
            replyTopic = C.Reply.topic
            emit = { data, sagaID, eventID, role, context in
                try context.emit(build(data), role: role, correlationID: sagaID, eventID: eventID).eventID
            }
        }
    }
}

/// How an instance ended, as ``SagaDefinition/onEnd`` receives it.
public struct SagaOutcome<SagaData: Sendable>: Sendable {
    /// The saga id.
    public var sagaID: String
    /// The data as the replies left it.
    public var data: SagaData
    /// ``SagaState/completed`` or ``SagaState/compensated``.
    public var state: SagaState
    /// Why it was compensated ("charge failed: …", "dispatch did not answer (3 attempts)",
    /// "compensate requested by ops"); nil when completed.
    public var reason: String?
}

/// What the ``Orchestrator`` needs of a definition, its data type erased: the data travels as
/// the JSON stored in the instance's row.
protocol OrchestratedSaga: Sendable {
    var name: String { get }
    var version: Int { get }
    /// The steps' names, in order.
    var stepNames: [String] { get }
    /// The reply types (event type and topic) of every command, compensations included.
    var replyTypes: [(type: String, topic: String)] { get }
    func timeout(of step: Int) -> Duration
    func attempts(of step: Int) -> Int
    func canUndo(_ step: Int) -> Bool
    /// Emits step `step`'s command (its compensation, role ``EventRole/compensation``, when
    /// `undo`), with `eventID` when sent again; returns the command's event id.
    func send(step: Int, undo: Bool, data: Data, sagaID: String, eventID: String?, in context: SagaContext) throws -> String
    /// What the reply to step `step`'s command says, and the data it leaves.
    func judge(step: Int, reply: EventMetadata, value: [UInt8], data: Data) throws -> (StepVerdict, Data)
    func end(sagaID: String, data: Data, state: SagaState, reason: String?, in context: SagaContext) throws
}

extension SagaDefinition: OrchestratedSaga {
    var stepNames: [String] { steps.map(\.name) }

    var replyTypes: [(type: String, topic: String)] {
        steps.flatMap { step in [step.command] + (step.compensation.map { [$0] } ?? []) }.map { ($0.replyType, $0.replyTopic) }
    }

    func timeout(of step: Int) -> Duration { steps[step].timeout }
    func attempts(of step: Int) -> Int { steps[step].attempts }
    func canUndo(_ step: Int) -> Bool { steps[step].compensation != nil }

    func send(step: Int, undo: Bool, data: Data, sagaID: String, eventID: String?, in context: SagaContext) throws -> String {
        guard let command = undo ? steps[step].compensation : steps[step].command else {
            preconditionFailure("saga '\(name)': step '\(steps[step].name)' has no compensation to send")
        }
        return try command.emit(try Self.decode(data), sagaID, eventID, undo ? .compensation : .success, context)
    }

    func judge(step: Int, reply: EventMetadata, value: [UInt8], data: Data) throws -> (StepVerdict, Data) {
        var sagaData = try Self.decode(data)
        let verdict = try steps[step].judge(reply, value, &sagaData)
        return (verdict, try Self.encode(sagaData))
    }

    func end(sagaID: String, data: Data, state: SagaState, reason: String?, in context: SagaContext) throws {
        try onEnd?(SagaOutcome(sagaID: sagaID, data: try Self.decode(data), state: state, reason: reason), context)
    }

    static func encode(_ data: SagaData) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try encoder.encode(data)
    }

    static func decode(_ data: Data) throws -> SagaData {
        try JSONDecoder().decode(SagaData.self, from: data)
    }
}
