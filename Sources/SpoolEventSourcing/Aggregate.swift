import Spool

/// An event-sourced aggregate: its state is the fold of its events, which are stored on
/// ``topic`` keyed by the aggregate's id, so one aggregate's history is one key's records.
///
/// ```swift
/// struct Account: Aggregate {
///     enum Event: Codable, Sendable { case opened(owner: String), deposited(Int), withdrew(Int) }
///     static let topic = "accounts"
///     var owner = ""
///     var balance = 0
///     mutating func apply(_ event: Event) {
///         switch event {
///         case .opened(let owner): self.owner = owner
///         case .deposited(let amount): balance += amount
///         case .withdrew(let amount): balance -= amount
///         }
///     }
/// }
/// ```
public protocol Aggregate: Codable, Sendable {
    /// The aggregate's events (often an enum), stored as JSON.
    associatedtype Event: Codable, Sendable
    /// The topic holding the events of every aggregate of this type, keyed by aggregate id.
    static var topic: String { get }
    /// The name in each event's `spool-event-type` header; ``topic`` unless overridden.
    static var eventType: String { get }
    /// The state of an aggregate without events.
    init()
    /// The state after `event`. Must not fail: an event is a fact that already happened.
    mutating func apply(_ event: Event)
}

extension Aggregate {
    public static var eventType: String { topic }
}

/// An aggregate's state and where it stands in its history.
public struct Versioned<State: Aggregate>: Sendable {
    /// The state after the events up to ``version``.
    public var state: State
    /// The offset of the aggregate's last event applied; nil before its first event. Pass it to
    /// ``AggregateRepository/save(_:_:expectedVersion:)`` as the expected version.
    public var version: Int64?
    /// Events applied since the snapshot the state was loaded from (all of them without one).
    public var eventsSinceSnapshot: Int

    public init(state: State, version: Int64?, eventsSinceSnapshot: Int) {
        self.state = state
        self.version = version
        self.eventsSinceSnapshot = eventsSinceSnapshot
    }
}

/// A point in an aggregate's history for ``AggregateRepository/load(_:asOf:)``.
public enum HistoryPoint: Sendable, Hashable {
    /// After the events at offsets up to and including this one.
    case offset(Int64)
    /// After the events written at or before this time, in milliseconds since the epoch.
    case time(milliseconds: Int64)
}
