import SagaEvents
import Spool
import SpoolEventSourcing

/// An order, event-sourced (`--mode event-sourced`): its state is the fold of its events, kept on
/// `order-events` keyed by order id. The events follow the choreography's state machine
/// (PENDING, then COMPLETED or CANCELLED with the reason) and record the steps between.
///
/// Each decision (``place(_:at:)``, ``reserveStock()``, …) returns the events a fact causes in the
/// current state, and none when the state has it already or the order has ended: so a fact
/// reported twice (an incoming event delivered again) gives one event, and an ended order takes
/// no more.
public struct OrderAggregate: Aggregate, Equatable {
    /// What happened to an order.
    public enum Event: Codable, Sendable, Equatable {
        /// Placed (PENDING), at `at` (milliseconds since the epoch); the saga starts.
        case placed(OrderCreated, at: Int64)
        /// Stock reserved the items.
        case stockReserved
        /// Balance debited `amount` points.
        case paid(amount: Int)
        /// A rider is registered: the order is COMPLETED.
        case deliveryScheduled(riderID: String)
        /// The order is CANCELLED, with the reason (a failed step, or the order timeout).
        case cancelled(reason: String)
    }

    /// The topic of every order's events, keyed by order id.
    public static let topic = "order-events"

    /// The order as placed; nil before it is.
    public private(set) var order: OrderCreated?
    /// When it was placed, in milliseconds since the epoch.
    public private(set) var placedAt: Int64 = 0
    /// PENDING from placing until COMPLETED or CANCELLED.
    public private(set) var state = Order.State.pending
    /// Why it was cancelled.
    public private(set) var reason: String?
    /// Whether stock reserved the items.
    public private(set) var stockReserved = false
    /// Points debited; nil until paid.
    public private(set) var paidAmount: Int?
    /// The rider registered for it.
    public private(set) var riderID: String?

    /// An order not placed yet (no events).
    public init() {}

    /// Whether the order was placed and has not ended: the only state that takes further events.
    public var isOpen: Bool { order != nil && state == .pending }

    /// The state after `event`.
    public mutating func apply(_ event: Event) {
        switch event {
        case .placed(let created, let at): (order, placedAt) = (created, at)
        case .stockReserved: stockReserved = true
        case .paid(let amount): paidAmount = amount
        case .deliveryScheduled(let rider): (riderID, state) = (rider, .completed)
        case .cancelled(let why): (reason, state) = (why, .cancelled)
        }
    }

    // MARK: Decisions

    /// Places `created` (its id is the aggregate's); nothing if it is placed already.
    public func place(_ created: OrderCreated, at time: Int64) -> [Event] {
        order == nil ? [.placed(created, at: time)] : []
    }

    /// Stock reserved the items; nothing if it did already or the order ended.
    public func reserveStock() -> [Event] {
        isOpen && !stockReserved ? [.stockReserved] : []
    }

    /// Balance debited `amount`; nothing if it did already or the order ended.
    public func pay(amount: Int) -> [Event] {
        isOpen && paidAmount == nil ? [.paid(amount: amount)] : []
    }

    /// A rider is registered: the order completes; nothing if it ended already.
    public func scheduleDelivery(riderID: String) -> [Event] {
        isOpen ? [.deliveryScheduled(riderID: riderID)] : []
    }

    /// The order is cancelled for `reason`; nothing if it ended already (the first end stands).
    public func cancel(reason: String) -> [Event] {
        isOpen ? [.cancelled(reason: reason)] : []
    }

    // MARK: The saga's events

    /// Whether `event` is announced to the other services (``integrationEvent(for:)`` has one for it).
    public static func announces(_ event: Event) -> Bool {
        switch event {
        case .placed, .deliveryScheduled, .cancelled: true
        case .stockReserved, .paid: false
        }
    }

    /// The integration event the other services get for `event`, which this state (the state
    /// after it) results from: `order-created` when placed, `order-completed` when the delivery
    /// is scheduled, `order-cancelled` (a failure) when cancelled; nil for the steps between,
    /// which come from the other services and concern only this one.
    public func integrationEvent(for event: Event) -> (any SpoolEvent, EventRole)? {
        order.flatMap { Self.integrationEvent(for: event, of: $0) }
    }

    /// ``integrationEvent(for:)`` of an event of `order` (the only part of the state it needs).
    public static func integrationEvent(for event: Event, of order: OrderCreated) -> (any SpoolEvent, EventRole)? {
        switch event {
        case .placed(let created, _): return (created, .success)
        case .stockReserved, .paid: return nil
        case .deliveryScheduled: return (OrderCompleted(orderID: order.orderID, userID: order.userID, total: order.total), .success)
        case .cancelled(let reason): return (OrderCancelled(orderID: order.orderID, userID: order.userID, reason: reason), .failure)
        }
    }
}
