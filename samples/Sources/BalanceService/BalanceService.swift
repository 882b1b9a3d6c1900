import Foundation
import GRDB
import SagaEvents
import ServiceKit
import Spool
import SpoolSaga

/// The balance service: users' points. Debits the user on `stock-decreased` (→
/// `payment-completed`, or `payment-failed`) and refunds on `order-cancelled` if it had debited
/// (an order cancelled by its payment timeout after the debit). Each order's payment is a row
/// (`debited`, `refunded`, `refused`, or `cancelled` when the cancellation arrived first).
public enum BalanceService {
    /// The service's name: consumer group and event source.
    public static let name = "balance"

    /// Creates the tables and loads the seed's users into an empty database.
    public static func prepare(_ database: any DatabaseWriter, seed: Seed) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("balance-v1") { db in
            try db.execute(sql: """
                CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, balance INTEGER NOT NULL CHECK (balance >= 0));
                CREATE TABLE payments (
                    order_id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL,
                    amount INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('debited', 'refunded', 'refused', 'cancelled'))
                );
                """)
            for user in seed.users {
                try db.cachedStatement(sql: "INSERT INTO users (id, name, balance) VALUES (?, ?, ?)").execute(arguments: [user.id, user.name, user.balance])
            }
        }
        try migrator.migrate(database)
    }

    /// Registers the payment step and the refund on `participant`.
    public static func register(on participant: SagaParticipant) {
        participant.add(ChargeUser())
        participant.on(OrderCancelled.self) { event, context in
            let orderID = event.payload.orderID
            let db = context.db
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT user_id, amount, state FROM payments WHERE order_id = ?"), arguments: [orderID]) else {
                try db.cachedStatement(sql: "INSERT INTO payments (order_id, user_id, amount, state) VALUES (?, ?, 0, 'cancelled')")
                    .execute(arguments: [orderID, event.payload.userID])
                return
            }
            guard row["state"] as String == "debited" else { return }
            let userID: String = row["user_id"]
            let amount: Int = row["amount"]
            try db.cachedStatement(sql: "UPDATE users SET balance = balance + ? WHERE id = ?").execute(arguments: [amount, userID])
            try db.cachedStatement(sql: "UPDATE payments SET state = 'refunded' WHERE order_id = ?").execute(arguments: [orderID])
            try context.emit(PaymentRefunded(orderID: orderID, userID: userID, amount: amount), role: .compensation)
        }
    }

    /// Every user's balance.
    public static func balances(_ db: Database) throws -> [String: Int] {
        Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, balance FROM users").map { ($0["id"], $0["balance"]) })
    }
}

/// stock-decreased → payment-completed | payment-failed.
struct ChargeUser: SagaStep {
    func process(_ event: EventEnvelope<StockDecreased>, in context: SagaContext) throws -> StepOutcome<PaymentCompleted, PaymentFailed> {
        let order = event.payload
        let db = context.db
        if let state = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM payments WHERE order_id = ?"), arguments: [order.orderID]) {
            return .failure(PaymentFailed(orderID: order.orderID, reason: "order already \(state)"))
        }
        func refuse(_ reason: String) throws -> StepOutcome<PaymentCompleted, PaymentFailed> {
            try db.cachedStatement(sql: "INSERT INTO payments (order_id, user_id, amount, state) VALUES (?, ?, ?, 'refused')")
                .execute(arguments: [order.orderID, order.userID, order.total])
            return .failure(PaymentFailed(orderID: order.orderID, reason: reason))
        }
        guard let balance = try Int.fetchOne(db.cachedStatement(sql: "SELECT balance FROM users WHERE id = ?"), arguments: [order.userID]) else {
            return try refuse("unknown user \(order.userID)")
        }
        guard balance >= order.total else {
            return try refuse("insufficient balance: \(order.userID) has \(balance), the order costs \(order.total)")
        }
        try db.cachedStatement(sql: "UPDATE users SET balance = balance - ? WHERE id = ?").execute(arguments: [order.total, order.userID])
        try db.cachedStatement(sql: "INSERT INTO payments (order_id, user_id, amount, state) VALUES (?, ?, ?, 'debited')")
            .execute(arguments: [order.orderID, order.userID, order.total])
        return .success(PaymentCompleted(orderID: order.orderID, userID: order.userID, amount: order.total))
    }
}
