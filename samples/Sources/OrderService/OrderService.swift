import Foundation
import GRDB
import SagaEvents
import ServiceKit
import Spool
import SpoolSaga

/// An order as stored and as the HTTP API returns it.
public struct Order: Codable, Sendable, Equatable {
    /// PENDING until the saga ends in COMPLETED or CANCELLED.
    public enum State: String, Codable, Sendable, CaseIterable {
        case pending = "PENDING", completed = "COMPLETED", cancelled = "CANCELLED"
    }

    public var id: String
    public var userId: String
    public var productId: String
    public var quantity: Int
    /// Price × quantity, in points.
    public var total: Int
    public var state: State
    /// Why the order was cancelled; nil otherwise.
    public var reason: String?
    /// The coupon code it is paid with, if any.
    public var coupon: String?
    /// ISO 8601 UTC, milliseconds.
    public var createdAt: String
    /// When the state last changed.
    public var updatedAt: String
    /// Event-sourced: the order's version, the offset of its last event in `order-events` (what
    /// `GET /orders/{id}?min-version=` waits for); nil in the other modes.
    public var version: Int64?

    init(row: Row) {
        id = row["id"]
        userId = row["user_id"]
        productId = row["product_id"]
        quantity = row["quantity"]
        total = row["total"]
        state = State(rawValue: row["state"]) ?? .pending
        reason = row["reason"]
        coupon = row["coupon"]
        createdAt = EventMetadata.formatTime(row["created_at"])
        updatedAt = EventMetadata.formatTime(row["updated_at"])
        version = row.hasColumn("version") ? row["version"] : nil
    }
}

/// The order service: places orders (PENDING) and ends them COMPLETED or CANCELLED with the
/// reason, emitting `order-completed` or `order-cancelled`; an order that already ended ignores
/// later outcomes.
///
/// - Choreography: placing stores the order and its `order-created` in one local transaction;
///   `delivery-scheduled` completes it; `stock-failed`, `payment-failed`, `delivery-failed`, or
///   no outcome within the order timeout (a saga timeout event) cancel it, and the cancellation
///   makes stock, balance and delivery undo what they did.
/// - Supervised: as the choreography, but a failure is the supervisor's to answer, and there is
///   no order timeout (what no rule settles is parked for a person); the supervisor's
///   `cancel-order` cancels the order with its reason.
/// - Event-sourced: see ``EventSourcedOrderService`` (this class serves the three other modes).
/// - Orchestration: placing stores the order and starts a `place-order` saga instance in the
///   same transaction; its orchestrator sends `reserve-stock`, `charge`, then `register-delivery`,
///   and on a refusal or a step that never answers the undo commands of the steps done
///   (`cancel-delivery`, `refund`, `release-stock`), newest first; the instance's end completes
///   or cancels the order.
public final class OrderService: OrderBook {
    /// The service's name: consumer group and event source.
    public static let name = "order"

    /// The saga participant the service runs on.
    public let participant: SagaParticipant
    /// Prices by product id (from the seed).
    public let prices: [String: Int]
    /// How long an order waits for its payment and delivery before it is cancelled (choreography).
    public let orderTimeout: Duration
    /// The orchestrator of the `place-order` sagas (orchestration); nil in the choreography.
    public let orchestrator: Orchestrator?
    private let placeOrder: SagaDefinition<PlaceOrderSaga>
    /// How the saga runs.
    private let mode: SagaMode

    /// A service on `participant` selling the seed's products, running the saga as `mode` says.
    /// In the orchestration each step waits `stepTimeout` for its reply, three times, before it
    /// counts as failed.
    public init(participant: SagaParticipant, seed: Seed, orderTimeout: Duration = .seconds(30), mode: SagaMode = .choreography,
                stepTimeout: Duration = .seconds(10)) {
        self.participant = participant
        self.prices = Dictionary(uniqueKeysWithValues: seed.products.map { ($0.id, $0.price) })
        self.orderTimeout = orderTimeout
        self.orchestrator = mode == .orchestration ? Orchestrator(participant: participant) : nil
        self.placeOrder = PlaceOrderSaga.definition(stepTimeout: stepTimeout)
        self.mode = mode
    }

    /// What runs the service's saga side: the orchestrator, or the participant alone.
    public var sagaService: ParticipantService {
        orchestrator.map(ParticipantService.init) ?? ParticipantService(participant)
    }

    /// Creates the orders table, and the event-sourced mode's read model (`orders_view`: the
    /// orders' rows and versions) and relay positions (`order_relay_positions`).
    public static func prepare(_ database: any DatabaseWriter, seed _: Seed) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("order-v1") { db in
            try db.execute(sql: """
                CREATE TABLE orders (
                    id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL,
                    product_id TEXT NOT NULL,
                    quantity INTEGER NOT NULL,
                    total INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('PENDING', 'COMPLETED', 'CANCELLED')),
                    reason TEXT,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                CREATE INDEX orders_state ON orders(state);
                """)
        }
        migrator.registerMigration("order-v2-coupons") { db in
            try db.execute(sql: "ALTER TABLE orders ADD COLUMN coupon TEXT")
        }
        migrator.registerMigration("order-v3-event-sourced") { db in
            try db.execute(sql: """
                CREATE TABLE orders_view (
                    id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL,
                    product_id TEXT NOT NULL,
                    quantity INTEGER NOT NULL,
                    total INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('PENDING', 'COMPLETED', 'CANCELLED')),
                    reason TEXT,
                    coupon TEXT,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    version INTEGER NOT NULL
                );
                CREATE INDEX orders_view_state ON orders_view(state);
                CREATE TABLE order_relay_positions (partition INTEGER PRIMARY KEY NOT NULL, next_offset INTEGER NOT NULL);
                """)
        }
        try migrator.migrate(database)
    }

    /// Registers the handlers of the saga's outcomes (choreography) or the saga definition (orchestration).
    public func register() {
        if let orchestrator { return orchestrator.register(placeOrder) }
        participant.on(DeliveryScheduled.self) { event, context in
            try Self.complete(event.payload.orderID, context)
        }
        if mode == .supervised {
            participant.on(CancelOrder.self) { event, context in
                try Self.cancel(event.payload.orderID, reason: event.payload.reason, context)
            }
            return
        }
        participant.on(StockFailed.self) { event, context in
            try Self.cancel(event.payload.orderID, reason: Self.reason(event.payload), context)
        }
        participant.on(PaymentFailed.self) { event, context in
            try Self.cancel(event.payload.orderID, reason: Self.reason(event.payload), context)
        }
        participant.on(DeliveryFailed.self) { event, context in
            try Self.cancel(event.payload.orderID, reason: Self.reason(event.payload), context)
        }
        participant.on(OrderTimedOut.self) { [orderTimeout] event, context in
            try Self.cancel(event.payload.orderID, reason: Self.timeoutReason(orderTimeout), context)
        }
    }

    // The reasons a cancelled order gives, in the choreography and event-sourced.
    static func reason(_ failure: StockFailed) -> String { "stock: \(failure.reason)" }
    static func reason(_ failure: PaymentFailed) -> String { "payment: \(failure.reason)" }
    static func reason(_ failure: DeliveryFailed) -> String { "delivery: \(failure.reason)" }
    static func timeoutReason(_ orderTimeout: Duration) -> String { "timeout: no payment and delivery within \(orderTimeout)" }

    static func complete(_ orderID: String, _ context: SagaContext) throws {
        guard let order = try end(orderID, .completed, reason: nil, context) else { return }
        try context.emit(OrderCompleted(orderID: order.id, userID: order.userId, total: order.total), correlationID: order.id)
    }

    static func cancel(_ orderID: String, reason: String, _ context: SagaContext) throws {
        guard let order = try end(orderID, .cancelled, reason: reason, context) else { return }
        try context.emit(OrderCancelled(orderID: order.id, userID: order.userId, reason: reason), role: .failure, correlationID: order.id)
    }

    /// Moves a PENDING order to `state`; nil if it is unknown or already ended.
    private static func end(_ orderID: String, _ state: Order.State, reason: String?, _ context: SagaContext) throws -> Order? {
        try context.db.cachedStatement(sql: "UPDATE orders SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state = 'PENDING'")
            .execute(arguments: [state.rawValue, reason, EventMetadata.now(), orderID])
        guard context.db.changesCount == 1 else { return nil }
        try context.cancelTimeout(OrderTimedOut.self, correlationID: orderID)
        return try fetchOrder(orderID, from: "orders", context.db)
    }

    /// Stores a PENDING order and, in one transaction with it, its `order-created` event (and,
    /// in the choreography, the order timeout) or its saga instance and first command (orchestration).
    /// `coupon` is passed on to the balance service, which applies it or refuses the payment.
    /// Throws ``ServiceError`` for an unknown product, an empty user or coupon, or a quantity
    /// outside 1…1000.
    public func place(userID: String, productID: String, quantity: Int, coupon: String? = nil) async throws -> Order {
        let created = try Self.newOrder(userID: userID, productID: productID, quantity: quantity, coupon: coupon, prices: prices)
        let id = created.orderID
        let timeout = mode == .choreography ? orderTimeout : nil
        let (orchestrator, placeOrder) = (self.orchestrator, self.placeOrder)
        return try await participant.transaction { context in
            let now = EventMetadata.now()
            try context.db.cachedStatement(sql: """
                INSERT INTO orders (id, user_id, product_id, quantity, total, state, created_at, updated_at, coupon)
                VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?, ?)
                """).execute(arguments: [id, created.userID, created.productID, created.quantity, created.total, now, now, created.coupon])
            if let orchestrator {
                try orchestrator.start(placeOrder, id: id, data: PlaceOrderSaga(order: created), in: context)
            } else {
                try context.emit(created, correlationID: id)
                if let timeout { try context.scheduleTimeout(OrderTimedOut(orderID: id), after: timeout, correlationID: id) }
            }
            return try Self.fetchOrder(id, from: "orders", context.db)!
        }
    }

    /// The order `id`, or nil.
    public func order(_ id: String) async throws -> Order? {
        try await participant.database.read { db in try Self.fetchOrder(id, from: "orders", db) }
    }

    /// The order `id`, or nil: reads see every write at once here, so `minVersion` is met (orders carry no version).
    public func order(_ id: String, minVersion _: Int64?) async throws -> Order? {
        try await order(id)
    }

    /// Orders in `state` (all if nil), oldest first.
    public func orders(in state: Order.State?) async throws -> [Order] {
        try await participant.database.read { db in try Self.fetchOrders(in: state, from: "orders", db) }
    }

    /// A new order's `order-created` with a fresh id, priced from `prices`. Throws ``ServiceError``
    /// for an unknown product, an empty user or coupon, or a quantity outside 1…1000.
    static func newOrder(userID: String, productID: String, quantity: Int, coupon: String?, prices: [String: Int]) throws -> OrderCreated {
        guard !userID.isEmpty else { throw ServiceError("userId must not be empty") }
        guard coupon?.isEmpty != true else { throw ServiceError("coupon must not be empty (leave it out for none)") }
        guard let price = prices[productID] else { throw ServiceError("unknown product '\(productID)'") }
        guard (1...1000).contains(quantity) else { throw ServiceError("quantity must be 1…1000, not \(quantity)") }
        let id = "o-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        return OrderCreated(orderID: id, userID: userID, productID: productID, quantity: quantity, total: price * quantity, coupon: coupon)
    }

    /// The order `id` of `table` (`orders`, or the event-sourced `orders_view`), or nil.
    static func fetchOrder(_ id: String, from table: String, _ db: Database) throws -> Order? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM \(table) WHERE id = ?"), arguments: [id]).map(Order.init(row:))
    }

    /// The orders of `table` in `state` (all if nil), oldest first.
    static func fetchOrders(in state: Order.State?, from table: String, _ db: Database) throws -> [Order] {
        if let state {
            return try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM \(table) WHERE state = ? ORDER BY created_at, id"), arguments: [state.rawValue])
                .map(Order.init(row:))
        }
        return try Row.fetchAll(db, sql: "SELECT * FROM \(table) ORDER BY created_at, id").map(Order.init(row:))
    }
}
