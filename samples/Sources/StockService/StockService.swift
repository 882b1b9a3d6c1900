import Foundation
import GRDB
import SagaEvents
import ServiceKit
import Spool
import SpoolSaga

/// The stock service: products and quantities. In the choreography it reserves an order's items
/// on `order-created` (→ `stock-decreased`, or `stock-failed`), and puts them back when the saga
/// fails after it: on `payment-failed` (its compensation) and on `order-cancelled` (the order
/// gave up, e.g. a payment timeout). In the orchestration it does the same on the commands
/// `reserve-stock` and `release-stock`, answering each. Each order's reservation is a row
/// (`reserved`, `released`, `refused`, or `cancelled` when the cancellation arrived first), so
/// every decision is made once and an order cancelled before its reservation arrived is
/// refused, not reserved.
public enum StockService {
    /// The service's name: consumer group and event source.
    public static let name = "stock"

    /// Creates the tables and loads the seed's products into an empty database.
    public static func prepare(_ database: any DatabaseWriter, seed: Seed) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("stock-v1") { db in
            try db.execute(sql: """
                CREATE TABLE products (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, quantity INTEGER NOT NULL CHECK (quantity >= 0));
                CREATE TABLE reservations (
                    order_id TEXT PRIMARY KEY NOT NULL,
                    product_id TEXT NOT NULL,
                    quantity INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('reserved', 'released', 'refused', 'cancelled'))
                );
                """)
            for product in seed.products {
                try db.cachedStatement(sql: "INSERT INTO products (id, name, quantity) VALUES (?, ?, ?)").execute(arguments: [product.id, product.name, product.stock])
            }
        }
        try migrator.migrate(database)
    }

    /// Registers the handlers of `mode` on `participant`: the step and the cancellation handler
    /// (choreography and event-sourced; supervised, where the supervisor's `restore-stock` replaces the reaction to
    /// `payment-failed`), or the two command handlers (orchestration).
    public static func register(on participant: SagaParticipant, mode: SagaMode = .choreography) {
        switch mode {
        case .choreography, .eventSourced, .supervised:
            if mode.isChoreography {
                participant.add(ReserveStock())
            } else {
                participant.add(ReserveStock.ForwardOnly())
                participant.on(RestoreStock.self) { event, context in try restore(event.payload.orderID, context) }
            }
            participant.on(OrderCancelled.self) { event, context in try restore(event.payload.orderID, context) }
        case .orchestration:
            participant.handle(ReserveStockCommand.self) { command, context in
                let order = command.payload
                return StockReservation(orderID: order.orderID,
                                        refusal: try reserve(orderID: order.orderID, productID: order.productID, quantity: order.quantity, db: context.db))
            }
            participant.handle(ReleaseStockCommand.self) { command, context in
                let orderID = command.payload.orderID
                let restored = try release(orderID: orderID, db: context.db, markingUnknownAs: "cancelled")
                return StockReleased(orderID: orderID, quantity: restored?.quantity ?? 0)
            }
        }
    }

    /// Reserves `quantity` of `productID` for `orderID`, recording the decision; returns why not
    /// (an order already decided or cancelled, an unknown product, not enough), or nil when reserved.
    static func reserve(orderID: String, productID: String, quantity: Int, db: Database) throws -> String? {
        if let state = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM reservations WHERE order_id = ?"), arguments: [orderID]) {
            // Only a cancellation that overtook the request can be here (the inbox stops redeliveries).
            return "order already \(state)"
        }
        func refuse(_ reason: String) throws -> String {
            try db.cachedStatement(sql: "INSERT INTO reservations (order_id, product_id, quantity, state) VALUES (?, ?, ?, 'refused')")
                .execute(arguments: [orderID, productID, quantity])
            return reason
        }
        guard quantity > 0 else { return try refuse("quantity must be positive") }
        guard let available = try Int.fetchOne(db.cachedStatement(sql: "SELECT quantity FROM products WHERE id = ?"), arguments: [productID]) else {
            return try refuse("unknown product \(productID)")
        }
        guard available >= quantity else {
            return try refuse("out of stock: \(available) \(productID) left, \(quantity) wanted")
        }
        try db.cachedStatement(sql: "UPDATE products SET quantity = quantity - ? WHERE id = ?").execute(arguments: [quantity, productID])
        try db.cachedStatement(sql: "INSERT INTO reservations (order_id, product_id, quantity, state) VALUES (?, ?, ?, 'reserved')")
            .execute(arguments: [orderID, productID, quantity])
        return nil
    }

    /// Puts back what `orderID` reserved, emitting `stock-restored`, or makes sure it is never reserved.
    private static func restore(_ orderID: String, _ context: SagaContext) throws {
        if let restored = try release(orderID: orderID, db: context.db, markingUnknownAs: "cancelled") {
            try context.emit(restored, role: .compensation)
        }
    }

    /// Puts back the reservation of `orderID` if it holds one; records `state` for an order never
    /// seen (so a late `order-created` is refused). Returns the event to emit, if any.
    static func release(orderID: String, db: Database, markingUnknownAs state: String?) throws -> StockRestored? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT product_id, quantity, state FROM reservations WHERE order_id = ?"), arguments: [orderID]) else {
            if let state {
                try db.cachedStatement(sql: "INSERT INTO reservations (order_id, product_id, quantity, state) VALUES (?, '', 0, ?)").execute(arguments: [orderID, state])
            }
            return nil
        }
        guard row["state"] as String == "reserved" else { return nil }
        let productID: String = row["product_id"]
        let quantity: Int = row["quantity"]
        try db.cachedStatement(sql: "UPDATE products SET quantity = quantity + ? WHERE id = ?").execute(arguments: [quantity, productID])
        try db.cachedStatement(sql: "UPDATE reservations SET state = 'released' WHERE order_id = ?").execute(arguments: [orderID])
        return StockRestored(orderID: orderID, productID: productID, quantity: quantity)
    }

    /// The quantity in stock of every product.
    public static func stock(_ db: Database) throws -> [String: Int] {
        Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, quantity FROM products").map { ($0["id"], $0["quantity"]) })
    }
}

/// order-created → stock-decreased | stock-failed; compensated by payment-failed → stock-restored.
struct ReserveStock: CompensableStep {
    func process(_ event: EventEnvelope<OrderCreated>, in context: SagaContext) throws -> StepOutcome<StockDecreased, StockFailed> {
        let order = event.payload
        if let refusal = try StockService.reserve(orderID: order.orderID, productID: order.productID, quantity: order.quantity, db: context.db) {
            return .failure(StockFailed(orderID: order.orderID, reason: refusal))
        }
        return .success(StockDecreased(orderID: order.orderID, userID: order.userID, productID: order.productID,
                                       quantity: order.quantity, total: order.total, coupon: order.coupon))
    }

    func compensate(_ event: EventEnvelope<PaymentFailed>, in context: SagaContext) throws -> StockRestored? {
        try StockService.release(orderID: event.payload.orderID, db: context.db, markingUnknownAs: nil)
    }

    /// The reservation without its own compensation (supervised: the supervisor decides it).
    struct ForwardOnly: SagaStep {
        func process(_ event: EventEnvelope<OrderCreated>, in context: SagaContext) throws -> StepOutcome<StockDecreased, StockFailed> {
            try ReserveStock().process(event, in: context)
        }
    }
}
