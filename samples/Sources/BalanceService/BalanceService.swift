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
///
/// Coupons: an order may carry a coupon code; the debit is the total less its discount (never
/// below 0). A coupon is good for one order in all: using it is a row of `coupon_uses`, whose
/// primary key is the code, inserted in the debit's transaction, so a second order's use fails
/// on the constraint (no check-then-act) and that order's payment is refused. A refund deletes
/// the row: the coupon is free again.
public enum BalanceService {
    /// The service's name: consumer group and event source.
    public static let name = "balance"

    /// Creates the tables and loads the seed's users and coupons into an empty database.
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
        migrator.registerMigration("balance-v2-coupons") { db in
            try db.execute(sql: """
                CREATE TABLE coupons (code TEXT PRIMARY KEY NOT NULL, discount INTEGER NOT NULL CHECK (discount >= 0));
                CREATE TABLE coupon_uses (code TEXT PRIMARY KEY NOT NULL REFERENCES coupons(code), order_id TEXT NOT NULL UNIQUE);
                ALTER TABLE payments ADD COLUMN coupon TEXT;
                """)
            for coupon in seed.coupons {
                try db.cachedStatement(sql: "INSERT INTO coupons (code, discount) VALUES (?, ?)").execute(arguments: [coupon.code, coupon.discount])
            }
        }
        try migrator.migrate(database)
    }

    /// Registers the handlers of `mode` on `participant`: the payment step and the refund on
    /// cancellation (choreography, event-sourced and supervised), or the two command handlers (orchestration).
    public static func register(on participant: SagaParticipant, mode: SagaMode = .choreography) {
        switch mode {
        case .choreography, .eventSourced, .supervised:
            participant.add(ChargeUser())
            participant.on(OrderCancelled.self) { event, context in
                if let refunded = try refund(orderID: event.payload.orderID, userID: event.payload.userID, db: context.db) {
                    try context.emit(refunded, role: .compensation)
                }
            }
        case .orchestration:
            participant.handle(ChargeCommand.self) { command, context in
                let order = command.payload
                return ChargeResult(orderID: order.orderID, refusal: try charge(orderID: order.orderID, userID: order.userID, amount: order.amount,
                                                                                 coupon: order.coupon, db: context.db).refusal)
            }
            participant.handle(RefundCommand.self) { command, context in
                let refunded = try refund(orderID: command.payload.orderID, userID: command.payload.userID, db: context.db)
                return RefundResult(orderID: command.payload.orderID, amount: refunded?.amount ?? 0)
            }
        }
    }

    /// What a charge did: debited this many points, or refused for this reason.
    enum Charge {
        case debited(Int)
        case refused(String)

        /// The reason of a refusal; nil when debited.
        var refusal: String? {
            if case .refused(let reason) = self { return reason }
            return nil
        }
    }

    /// Debits `amount` less `coupon`'s discount from `userID` for `orderID`, recording the
    /// decision and the coupon's use; refuses an order already decided or cancelled, an unknown
    /// user or coupon, a coupon another order used, too little balance.
    static func charge(orderID: String, userID: String, amount: Int, coupon: String?, db: Database) throws -> Charge {
        if let state = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM payments WHERE order_id = ?"), arguments: [orderID]) {
            return .refused("order already \(state)")
        }
        func refuse(_ reason: String) throws -> Charge {
            try db.cachedStatement(sql: "INSERT INTO payments (order_id, user_id, amount, state, coupon) VALUES (?, ?, ?, 'refused', ?)")
                .execute(arguments: [orderID, userID, amount, coupon])
            return .refused(reason)
        }
        guard let balance = try Int.fetchOne(db.cachedStatement(sql: "SELECT balance FROM users WHERE id = ?"), arguments: [userID]) else {
            return try refuse("unknown user \(userID)")
        }
        var price = amount
        if let coupon {
            guard let discount = try Int.fetchOne(db.cachedStatement(sql: "SELECT discount FROM coupons WHERE code = ?"), arguments: [coupon]) else {
                return try refuse("unknown coupon \(coupon)")
            }
            price = Swift.max(0, amount - discount)
        }
        guard balance >= price else {
            return try refuse("insufficient balance: \(userID) has \(balance), the order costs \(price)")
        }
        if let coupon {
            do {
                try db.cachedStatement(sql: "INSERT INTO coupon_uses (code, order_id) VALUES (?, ?)").execute(arguments: [coupon, orderID])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                return try refuse("coupon \(coupon) already used")
            }
        }
        try db.cachedStatement(sql: "UPDATE users SET balance = balance - ? WHERE id = ?").execute(arguments: [price, userID])
        try db.cachedStatement(sql: "INSERT INTO payments (order_id, user_id, amount, state, coupon) VALUES (?, ?, ?, 'debited', ?)")
            .execute(arguments: [orderID, userID, price, coupon])
        return .debited(price)
    }

    /// Gives back what `orderID` debited, if it did, and frees its coupon; records `cancelled`
    /// for an order never charged (so a late charge is refused). Returns the refund, if any.
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
        try db.cachedStatement(sql: "DELETE FROM coupon_uses WHERE order_id = ?").execute(arguments: [orderID])
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
        switch try BalanceService.charge(orderID: order.orderID, userID: order.userID, amount: order.total, coupon: order.coupon, db: context.db) {
        case .debited(let amount): return .success(PaymentCompleted(orderID: order.orderID, userID: order.userID, amount: amount))
        case .refused(let reason): return .failure(PaymentFailed(orderID: order.orderID, reason: reason))
        }
    }
}
