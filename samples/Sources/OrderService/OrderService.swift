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
    /// ISO 8601 UTC, milliseconds.
    public var createdAt: String
    /// When the state last changed.
    public var updatedAt: String

    init(row: Row) {
        id = row["id"]
        userId = row["user_id"]
        productId = row["product_id"]
        quantity = row["quantity"]
        total = row["total"]
        state = State(rawValue: row["state"]) ?? .pending
        reason = row["reason"]
        createdAt = EventMetadata.formatTime(row["created_at"])
        updatedAt = EventMetadata.formatTime(row["updated_at"])
    }
}

/// The order service: places orders (PENDING + `order-created`, in one local transaction) and
/// ends them: COMPLETED on `payment-completed`, CANCELLED with the reason on `stock-failed`,
/// `payment-failed`, or when no payment outcome arrived within the payment timeout (a saga
/// timeout event). The end emits `order-completed` or `order-cancelled`; an order that already
/// ended ignores later outcomes (the cancellation makes stock and balance undo what they did).
public final class OrderService: Sendable {
    /// The service's name: consumer group and event source.
    public static let name = "order"

    /// The saga participant the service runs on.
    public let participant: SagaParticipant
    /// Prices by product id (from the seed).
    public let prices: [String: Int]
    /// How long an order waits for its payment outcome before it is cancelled.
    public let paymentTimeout: Duration

    /// A service on `participant` selling the seed's products.
    public init(participant: SagaParticipant, seed: Seed, paymentTimeout: Duration = .seconds(30)) {
        self.participant = participant
        self.prices = Dictionary(uniqueKeysWithValues: seed.products.map { ($0.id, $0.price) })
        self.paymentTimeout = paymentTimeout
    }

    /// Creates the orders table.
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
        try migrator.migrate(database)
    }

    /// Registers the handlers of the saga's outcomes.
    public func register() {
        participant.on(PaymentCompleted.self) { event, context in
            guard let order = try Self.end(event.payload.orderID, .completed, reason: nil, context) else { return }
            try context.emit(OrderCompleted(orderID: order.id, userID: order.userId, total: order.total))
        }
        participant.on(StockFailed.self) { event, context in
            try Self.cancel(event.payload.orderID, reason: "stock: \(event.payload.reason)", context)
        }
        participant.on(PaymentFailed.self) { event, context in
            try Self.cancel(event.payload.orderID, reason: "payment: \(event.payload.reason)", context)
        }
        participant.on(PaymentTimedOut.self) { [paymentTimeout] event, context in
            try Self.cancel(event.payload.orderID, reason: "timeout: no payment outcome within \(paymentTimeout)", context)
        }
    }

    private static func cancel(_ orderID: String, reason: String, _ context: SagaContext) throws {
        guard let order = try end(orderID, .cancelled, reason: reason, context) else { return }
        try context.emit(OrderCancelled(orderID: order.id, userID: order.userId, reason: reason), role: .failure)
    }

    /// Moves a PENDING order to `state`; nil if it is unknown or already ended.
    private static func end(_ orderID: String, _ state: Order.State, reason: String?, _ context: SagaContext) throws -> Order? {
        try context.db.cachedStatement(sql: "UPDATE orders SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state = 'PENDING'")
            .execute(arguments: [state.rawValue, reason, EventMetadata.now(), orderID])
        guard context.db.changesCount == 1 else { return nil }
        try context.cancelTimeout(PaymentTimedOut.self)
        return try Row.fetchOne(context.db.cachedStatement(sql: "SELECT * FROM orders WHERE id = ?"), arguments: [orderID]).map(Order.init(row:))
    }

    /// Stores a PENDING order and its `order-created` event in one transaction, with the payment
    /// timeout. Throws ``ServiceError`` for an unknown product, an empty user or a quantity
    /// outside 1…1000.
    public func place(userID: String, productID: String, quantity: Int) async throws -> Order {
        guard !userID.isEmpty else { throw ServiceError("userId must not be empty") }
        guard let price = prices[productID] else { throw ServiceError("unknown product '\(productID)'") }
        guard (1...1000).contains(quantity) else { throw ServiceError("quantity must be 1…1000, not \(quantity)") }
        let id = "o-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let created = OrderCreated(orderID: id, userID: userID, productID: productID, quantity: quantity, total: price * quantity)
        let timeout = paymentTimeout
        return try await participant.transaction { context in
            let now = EventMetadata.now()
            try context.db.cachedStatement(sql: """
                INSERT INTO orders (id, user_id, product_id, quantity, total, state, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?)
                """).execute(arguments: [id, userID, productID, quantity, created.total, now, now])
            try context.emit(created, correlationID: id)
            try context.scheduleTimeout(PaymentTimedOut(orderID: id), after: timeout, correlationID: id)
            return try Row.fetchOne(context.db.cachedStatement(sql: "SELECT * FROM orders WHERE id = ?"), arguments: [id]).map(Order.init(row:))!
        }
    }

    /// The order `id`, or nil.
    public func order(_ id: String) async throws -> Order? {
        try await participant.database.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM orders WHERE id = ?"), arguments: [id]).map(Order.init(row:))
        }
    }

    /// Orders in `state` (all if nil), oldest first.
    public func orders(in state: Order.State?) async throws -> [Order] {
        try await participant.database.read { db in
            if let state {
                return try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM orders WHERE state = ? ORDER BY created_at, id"), arguments: [state.rawValue])
                    .map(Order.init(row:))
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM orders ORDER BY created_at, id").map(Order.init(row:))
        }
    }
}
