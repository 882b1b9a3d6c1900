import Foundation
import GRDB
import Spool

/// What a handler works with: the service's database, inside the transaction that also records
/// the handled event in the inbox, and the outbox to emit events into.
///
/// Everything done through a context commits or rolls back as one local transaction: the state
/// change, the inbox entry, the emitted events and the scheduled timeouts. Valid only during the
/// call it is passed to.
public final class SagaContext {
    /// The service's database, inside the current write transaction.
    public let db: Database
    /// The event being handled; nil in a ``SagaParticipant/transaction(_:)`` started by the service itself.
    public let trigger: EventMetadata?
    /// The participant's name: the `spool-source` of every event emitted here.
    public let service: String
    /// How many events this transaction emitted so far.
    public private(set) var emittedCount = 0
    /// The record of the event being handled (its topic and headers, for the kit's own handlers).
    let triggerRecord: SpoolRecord?

    init(db: Database, trigger: EventMetadata?, triggerRecord: SpoolRecord? = nil, service: String) {
        self.db = db
        self.trigger = trigger
        self.triggerRecord = triggerRecord
        self.service = service
    }

    /// The saga being worked on: the trigger's correlation id, if there is a trigger.
    public var correlationID: String? { trigger?.correlationID }

    /// Writes `event` to the outbox, to be published to `E.topic` once the transaction commits.
    /// It belongs to `correlationID` (default: the trigger's saga) and is caused by the trigger.
    /// Throws ``SpoolError/Code/invalidArgument`` with no saga to belong to, or if it does not encode.
    @discardableResult
    public func emit<E: SpoolEvent>(_ event: E, role: EventRole = .success, correlationID: String? = nil) throws -> EventMetadata {
        try emit(event, role: role, correlationID: correlationID, eventID: nil)
    }

    /// ``emit(_:role:correlationID:)`` with the event id `eventID` when given: a command sent
    /// again is the same event, so its receiver's inbox knows it.
    @discardableResult
    func emit<E: SpoolEvent>(_ event: E, role: EventRole = .success, correlationID: String?, eventID: String?) throws -> EventMetadata {
        var envelope = try envelope(event, correlationID: correlationID)
        if let eventID { envelope.metadata.eventID = eventID }
        return try insert(envelope, role: role)
    }

    @discardableResult
    private func insert<E: SpoolEvent>(_ envelope: EventEnvelope<E>, role: EventRole) throws -> EventMetadata {
        try SagaStore.insertOutbox(db, record: try envelope.record(), topic: E.topic, role: role, eventID: envelope.metadata.eventID)
        emittedCount += 1
        return envelope.metadata
    }

    /// Emits `reply` as the answer to the command being handled, and keeps it so that the same
    /// command delivered again gets the same reply (``repeatReply()``).
    func reply<R: SpoolEvent>(_ reply: R) throws {
        guard let command = trigger else { throw SpoolError(.invalidArgument, "a reply needs a command to answer") }
        try emit(reply)
        try SagaStore.keepLastOutboxRowAsReply(db, commandID: command.eventID)
    }

    /// Emits `reply` as the answer to the command with event id `commandID` of saga
    /// `correlationID`, one that a ``SagaParticipant/accept(_:_:)`` handler left unanswered, and
    /// keeps it so that the command delivered again gets it again. Throws if that command has a
    /// reply already (a command is answered once), or for an event that does not encode.
    public func reply<R: SpoolEvent>(_ reply: R, toCommand commandID: String, correlationID: String) throws {
        try insert(EventEnvelope(reply, correlationID: correlationID, causationID: commandID, source: service), role: .success)
        do {
            try SagaStore.keepLastOutboxRowAsReply(db, commandID: commandID)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw SpoolError(.invalidArgument, "command \(commandID) of saga \(correlationID) has a reply already")
        }
    }

    /// Emits again the reply kept for the command being handled (delivered again); false if none is kept.
    func repeatReply() throws -> Bool {
        guard let command = trigger, try SagaStore.repeatReply(db, commandID: command.eventID) else { return false }
        emittedCount += 1
        return true
    }

    /// Asks for `event` to be emitted (role ``EventRole/timeout``) after `delay`, unless
    /// ``cancelTimeout(_:correlationID:)`` cancels it first. One timeout per event type and saga:
    /// scheduling again replaces the earlier one. The timeout is a database row of this
    /// transaction, so it survives restarts; one that fell due while the service was down fires
    /// when the service starts.
    public func scheduleTimeout<E: SpoolEvent>(_ event: E, after delay: Duration, correlationID: String? = nil) throws {
        let envelope = try envelope(event, correlationID: correlationID)
        let due = EventMetadata.now() + delay.wholeMilliseconds
        try SagaStore.scheduleTimeout(db, record: try envelope.record(), topic: E.topic, eventID: envelope.metadata.eventID,
                                      correlationID: envelope.metadata.correlationID, eventType: E.eventType, due: due)
    }

    /// Cancels the pending timeout of type `E` of `correlationID` (default: the trigger's saga);
    /// returns whether one was pending.
    @discardableResult
    public func cancelTimeout<E: SpoolEvent>(_ type: E.Type, correlationID: String? = nil) throws -> Bool {
        guard let saga = correlationID ?? self.correlationID else {
            throw SpoolError(.invalidArgument, "cancelTimeout(\(E.eventType)) needs a correlation id outside a handler")
        }
        return try SagaStore.cancelTimeout(db, correlationID: saga, eventType: E.eventType)
    }

    private func envelope<E: SpoolEvent>(_ event: E, correlationID: String?) throws(SpoolError) -> EventEnvelope<E> {
        guard let saga = correlationID ?? self.correlationID else {
            throw SpoolError(.invalidArgument, "event '\(E.eventType)' needs a correlation id: it is not emitted while handling an event")
        }
        return EventEnvelope(event, correlationID: saga, causationID: trigger?.eventID, source: service)
    }
}
