import Spool

/// What a step's ``SagaStep/process(_:in:)`` decided: go on, or fail the saga.
public enum StepOutcome<Success: SpoolEvent, Failure: SpoolEvent>: Sendable {
    /// The local transaction did its work; `Success` is emitted (role ``EventRole/success``).
    case success(Success)
    /// The step cannot be done (no stock, no money); `Failure` is emitted (role
    /// ``EventRole/failure``) and the participants before it compensate.
    case failure(Failure)
}

/// One participant's step of a choreography saga: the event that starts it, the local
/// transaction it runs, and the event it emits on success or on failure.
///
/// ``process(_:in:)`` runs inside the participant's database transaction, together with the
/// inbox entry of the trigger and the outbox row of the outcome: either all of it is stored or
/// none of it. It must not have effects outside ``SagaContext/db``.
public protocol SagaStep: Sendable {
    /// The event that starts the step.
    associatedtype Trigger: SpoolEvent
    /// Emitted when the step succeeded.
    associatedtype Success: SpoolEvent
    /// Emitted when the step failed.
    associatedtype Failure: SpoolEvent

    /// Runs the step's local transaction for `event`. Throwing (other than decisions, which are
    /// returned) rolls the transaction back and retries it by the participant's ``RetryPolicy``.
    func process(_ event: EventEnvelope<Trigger>, in context: SagaContext) throws -> StepOutcome<Success, Failure>
}

/// A step that can be undone: when `Compensation` arrives (a later step failed),
/// ``compensate(_:in:)`` undoes the local effect of ``SagaStep/process(_:in:)``.
public protocol CompensableStep: SagaStep {
    /// The event that asks for the compensation.
    associatedtype Compensation: SpoolEvent
    /// Emitted after compensating (role ``EventRole/compensation``).
    associatedtype Compensated: SpoolEvent

    /// Undoes the step for `event`'s saga, in the same kind of transaction as `process`. Returns
    /// nil when there was nothing to undo (the step had failed or was already compensated), in
    /// which case nothing is emitted. Must be safe to call for a saga the step never processed.
    func compensate(_ event: EventEnvelope<Compensation>, in context: SagaContext) throws -> Compensated?
}
