/// Where an orchestrated or supervised saga stands, as published in ``SagaStateChanged``.
public enum SagaState: String, Codable, Sendable, CaseIterable {
    /// Steps are being done.
    case running
    /// A step failed; the steps done before it are being undone, newest first.
    case compensating
    /// Every step succeeded.
    case completed
    /// Every step that had been done was undone.
    case compensated
    /// Stopped and waiting for a person: `spool saga retry` or `spool saga compensate` moves it on.
    case parked

    /// True for the states a saga never leaves.
    public var isFinal: Bool { self == .completed || self == .compensated }
}

/// One change of a saga's state, published by its orchestrator or supervisor to
/// `spool.saga-states` in the same local transaction as the change, keyed by saga id: the
/// topic's last event per key is the saga's state (what `spool saga list` shows), and all of
/// them are its history (`spool saga show`).
public struct SagaStateChanged: SpoolEvent {
    public static let eventType = "spool-saga-state-changed"
    public static let topic = "spool.saga-states"

    /// The saga (its correlation id).
    public var sagaID: String
    /// The saga definition's name (or the supervised flow's).
    public var saga: String
    /// The definition's version the saga runs on.
    public var version: Int
    /// The state after the change.
    public var state: SagaState
    /// The step being done or undone (its name), if any.
    public var step: String?
    /// Send attempts of the current step's command so far.
    public var attempt: Int
    /// When the current step times out (ms since the epoch), if a reply is awaited.
    public var deadline: Int64?
    /// What happened, in a few words ("reserve-stock succeeded", "charge timed out; sent again (attempt 2 of 3)").
    public var change: String
    /// Why the saga is compensating or parked, if it is.
    public var reason: String?
    /// The steps done so far, in order.
    public var completedSteps: [String]
    /// The steps undone so far, in order of undoing.
    public var compensatedSteps: [String]

    /// A state change; see the properties.
    public init(sagaID: String, saga: String, version: Int, state: SagaState, step: String?, attempt: Int, deadline: Int64?,
                change: String, reason: String?, completedSteps: [String], compensatedSteps: [String]) {
        self.sagaID = sagaID
        self.saga = saga
        self.version = version
        self.state = state
        self.step = step
        self.attempt = attempt
        self.deadline = deadline
        self.change = change
        self.reason = reason
        self.completedSteps = completedSteps
        self.compensatedSteps = compensatedSteps
    }
}

/// A person's decision about one saga, sent as an event (`spool saga retry|compensate ID`) to
/// `spool.saga-control`; the orchestrator or supervisor that owns the saga acts on it, the
/// others ignore it. Acting on it is idempotent: a saga that already moved on stays as it is.
public struct SagaControl: SpoolEvent {
    public static let eventType = "spool-saga-control"
    public static let topic = "spool.saga-control"

    /// What to do.
    public enum Action: String, Codable, Sendable, CaseIterable {
        /// Send the parked step's command again (or run the failed step again), attempts reset.
        case retry
        /// Undo what the saga did, newest step first, and end it compensated.
        case compensate
    }

    /// The saga (its correlation id).
    public var sagaID: String
    /// What to do.
    public var action: Action
    /// Who asked (a user name, a tool), for the history.
    public var requestedBy: String

    /// A decision; see the properties.
    public init(sagaID: String, action: Action, requestedBy: String) {
        self.sagaID = sagaID
        self.action = action
        self.requestedBy = requestedBy
    }
}

/// A supervisor's rule table, published to `spool.saga-rules` (keyed by the supervisor's name)
/// each time it starts: what `spool saga rules` prints.
public struct SagaRules: SpoolEvent {
    public static let eventType = "spool-saga-rules"
    public static let topic = "spool.saga-rules"

    /// One rule: whose failure, which failure, what is done about it.
    public struct Rule: Codable, Sendable, Hashable {
        /// The service that fails.
        public var service: String
        /// The failure: a failure event ("event payment-failed") or a dead letter ("order-paid dead-lettered").
        public var failure: String
        /// The answer: "compensate: cancel-coupon, cancel-delivery", "retry 3 times, backoff 1000 ms", "escalate".
        public var action: String

        /// A rule; see the properties.
        public init(service: String, failure: String, action: String) {
            self.service = service
            self.failure = failure
            self.action = action
        }
    }

    /// The supervisor (its service name).
    public var supervisor: String
    /// The saga flow it supervises, as its sagas' states name it.
    public var flow: String
    /// The rules, in the order they are tried.
    public var rules: [Rule]

    /// A rule table; see the properties.
    public init(supervisor: String, flow: String, rules: [Rule]) {
        self.supervisor = supervisor
        self.flow = flow
        self.rules = rules
    }
}
