import Foundation
import Spool

/// One failure a ``Supervisor`` acts on: a failure event a service emitted (role
/// ``EventRole/failure``), or an event a service's handler gave up on (its dead letter).
public struct FailureReport: Sendable {
    /// The saga (the event's correlation id).
    public var sagaID: String
    /// The service that failed: the failure event's source, or the consumer group that
    /// dead-lettered the event.
    public var service: String
    /// The failure event's type, or the dead-lettered event's type.
    public var eventType: String
    /// True for a dead letter.
    public var isDeadLetter: Bool
    /// The dead letter's error; nil for a failure event.
    public var error: String?
    /// The event's envelope and JSON payload.
    public var metadata: EventMetadata
    public var value: [UInt8]

    /// The event's payload decoded as `E`; throws ``SpoolError/Code/invalidArgument`` if it is not one.
    public func payload<E: SpoolEvent>(as type: E.Type) throws(SpoolError) -> E {
        try EventEnvelope<E>(metadata: metadata, value: value).payload
    }

    /// "payment-failed from balance", "order-paid dead-lettered by order (disk full)".
    var summary: String {
        isDeadLetter ? "\(eventType) dead-lettered by \(service)\(error.map { " (\($0))" } ?? "")" : "\(eventType) from \(service)"
    }
}

/// A command a supervisor sends for a failure, built from its report: "cancel the coupon",
/// "cancel the delivery". Emitted with role ``EventRole/compensation`` and the saga's id.
public struct SupervisorCommand: Sendable {
    /// The command's event type, in the rule table.
    public let eventType: String
    let emit: @Sendable (FailureReport, SagaContext) throws -> Void

    /// Sends `build(report)` to its topic.
    public static func send<E: SpoolEvent>(_ build: @escaping @Sendable (FailureReport) throws -> E) -> SupervisorCommand {
        SupervisorCommand(eventType: E.eventType) { report, context in
            try context.emit(try build(report), role: .compensation, correlationID: report.sagaID)
        }
    }
}

/// One line of a supervisor's rule table: which failure (the service and the event that
/// failed or was dead-lettered) gets which answer.
///
/// ```swift
/// let rules: [SupervisorRule] = [
///     .failed(PaymentFailed.self, from: "balance", .compensate([.send { CancelCoupon(orderID: $0.sagaID) },
///                                                             .send { CancelDelivery(orderID: $0.sagaID) }])),
///     .deadLettered(OrderPaid.self, by: "order", .retry(attempts: 3, backoff: .seconds(1))),
///     .deadLettered(RiderRequested.self, by: "delivery", .escalate(compensation: [.send { CancelDelivery(orderID: $0.sagaID) }])),
/// ]
/// ```
public struct SupervisorRule: Sendable {
    /// What the supervisor does about a matching failure.
    public enum Action: Sendable {
        /// Send these commands, in order; the saga ends compensated.
        case compensate([SupervisorCommand])
        /// Publish the dead-lettered event again to its topic, after `backoff` doubled per attempt
        /// (at most 16 times `backoff`), up to `attempts` times; only the service that failed
        /// handles it again (the others have its event id in their inbox). Then escalate.
        /// Dead letters only: a failure event is a decision, not an accident.
        case retry(attempts: Int, backoff: Duration)
        /// Park the saga for a person (`spool saga retry|compensate ID`); `compensation` is what
        /// `spool saga compensate` then sends.
        case escalate(compensation: [SupervisorCommand])

        /// Park the saga, with nothing declared to compensate.
        public static var escalate: Action { .escalate(compensation: []) }

        /// The commands `spool saga compensate` sends for this rule's failure.
        var compensation: [SupervisorCommand] {
            switch self {
            case .compensate(let commands), .escalate(let commands): commands
            case .retry: []
            }
        }

        /// "compensate: cancel-coupon, cancel-delivery", "retry 3 times, backoff 1s", "escalate".
        var summary: String {
            switch self {
            case .compensate(let commands): "compensate: \(commands.map(\.eventType).joined(separator: ", "))"
            case .retry(let attempts, let backoff): "retry \(attempts) time\(attempts == 1 ? "" : "s"), backoff \(backoff.wholeMilliseconds) ms"
            case .escalate(let commands): "escalate" + (commands.isEmpty ? "" : "; on request compensate: \(commands.map(\.eventType).joined(separator: ", "))")
            }
        }
    }

    /// The service whose failure this is.
    public let service: String
    /// The failure event's type, or the dead-lettered event's type.
    public let eventType: String
    /// The topic the report is read from: the failure event's, or the dead letters' (`<topic>.dlq`).
    public let topic: String
    /// True for a rule about dead letters.
    public let isDeadLetter: Bool
    /// The answer.
    public let action: Action

    /// A rule for the failure event `E` emitted by `service`. `action` cannot be a retry.
    public static func failed<E: SpoolEvent>(_ type: E.Type, from service: String, _ action: Action) -> SupervisorRule {
        if case .retry = action { preconditionFailure("rule for \(E.eventType) from \(service): only a dead letter can be retried") }
        return SupervisorRule(service: service, eventType: E.eventType, topic: E.topic, isDeadLetter: false, action: action)
    }

    /// A rule for events `E` that `service`'s handler gave up on (dead-lettered).
    public static func deadLettered<E: SpoolEvent>(_ type: E.Type, by service: String, _ action: Action) -> SupervisorRule {
        if case .retry(let attempts, _) = action { precondition(attempts >= 1, "rule for \(E.eventType) dead-lettered by \(service): attempts must be at least 1") }
        return SupervisorRule(service: service, eventType: E.eventType, topic: E.topic + ".dlq", isDeadLetter: true, action: action)
    }

    func matches(_ report: FailureReport) -> Bool {
        report.service == service && report.eventType == eventType && report.isDeadLetter == isDeadLetter
    }

    /// The line of the published rule table.
    var published: SagaRules.Rule {
        SagaRules.Rule(service: service, failure: isDeadLetter ? "\(eventType) dead-lettered" : "event \(eventType)", action: action.summary)
    }
}
