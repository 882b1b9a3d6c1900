import Foundation
import GRDB
import SagaEvents
import ServiceKit
import Spool
import SpoolSaga

/// The balance service: users' points. In the choreography it debits the user on
/// `stock-decreased` (→ `payment-completed`, or `payment-failed`) and refunds on
/// `order-cancelled` if it had debited (an order cancelled by its payment timeout after the
/// debit); in the orchestration it does the same on the commands `charge` and `refund`,
/// answering each. Each order's payment is a row (`debited`, `refunded`, `refused`, or
/// `cancelled` when the cancellation arrived first).
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

    /// Registers the handlers of `mode` on `participant`: the payment step and the refund on
    /// cancellation (choreography and supervised), or the two command handlers (orchestration).
    public static func register(on participant: SagaParticipant, mode: SagaMode = .choreography) {
        switch mode {
        case .choreography, .supervised:
            participant.add(ChargeUser())
            participant.on(OrderCancelled.self) { event, context in
                if let refunded = try refund(orderID: event.payload.orderID, userID: event.payload.userID, db: context.db) {
                    try context.emit(refunded, role: .compensation)
                }
            }
        case .orchestration:
            participant.handle(ChargeCommand.self) { command, context in
                let order = command.payload
                return ChargeResult(orderID: order.orderID,
                                    refusal: try charge(orderID: order.orderID, userID: order.userID, amount: order.amount, db: context.db))
            }
            participant.handle(RefundCommand.self) { command, context in
                let refunded = try refund(orderID: command.payload.orderID, userID: command.payload.userID, db: context.db)
                return RefundResult(orderID: command.payload.orderID, amount: refunded?.amount ?? 0)
            }
        }
    }

    /// Debits `amount` from `userID` for `orderID`, recording the decision; returns why not (an
    /// order already decided or cancelled, an unknown user, too little balance), or nil when debited.
    static func charge(orderID: String, userID: String, amount: Int, db: Database) throws -> String? {
        if let state = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM payments WHERE order_id = ?"), arguments: [orderID]) {
            return "order already \(state)"
        }
        func refuse(_ reason: String) throws -> String {
            try db.cachedStatement(sql: "INSERT INTO payments (order_id, user_id, amount, state) VALUES (?, ?, ?, 'refused')")
                .execute(arguments: [orderID, userID, amount])
            return reason
        }
        guard let balance = try Int.fetchOne(db.cachedStatement(sql: "SELECT balance FROM users WHERE id = ?"), arguments: [userID]) else {
            return try refuse("unknown user \(userID)")
        }
        guard balance >= amount else {
            return try refuse("insufficient balance: \(userID) has \(balance), the order costs \(amount)")
        }
        try db.cachedStatement(sql: "UPDATE users SET balance = balance - ? WHERE id = ?").execute(arguments: [amount, userID])
        try db.cachedStatement(sql: "INSERT INTO payments (order_id, user_id, amount, state) VALUES (?, ?, ?, 'debited')")
            .execute(arguments: [orderID, userID, amount])
        return nil
    }

    /// Gives back what `orderID` debited, if it did; records `cancelled` for an order never
    /// charged (so a late charge is refused). Returns the refund, if any.
    static func refund(orderID: String, userID: String, db: Database) throws -> PaymentRefunded? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT user_id, amount, state FROM payments WHERE order_id = ?"), arguments: [orderID]) else {
            try db.cachedStatement(sql: "INSERT INTO payments (order_id, user_id, amount, state) VALUES (?, ?, 0, 'cancelled')")
                .execute(arguments: [orderID, userID])
            return nil
        }
        guard row["state"] as String == "debited" else { return nil }
        let debitedUser: String = row["user_id"]
        let amount: Int = row["amount"]
        try db.cachedStatement(sql: "UPDATE users SET balance = balance + ? WHERE id = ?").execute(arguments: [amount, debitedUser])
        try db.cachedStatement(sql: "UPDATE payments SET state = 'refunded' WHERE order_id = ?").execute(arguments: [orderID])
        return PaymentRefunded(orderID: orderID, userID: debitedUser, amount: amount)
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
        if let refusal = try BalanceService.charge(orderID: order.orderID, userID: order.userID, amount: order.total, db: context.db) {
            return .failure(PaymentFailed(orderID: order.orderID, reason: refusal))
        }
        return .success(PaymentCompleted(orderID: order.orderID, userID: order.userID, amount: order.total))
    }
}
