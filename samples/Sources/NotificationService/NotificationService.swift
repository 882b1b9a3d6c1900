import Foundation
import GRDB
import Logging
import SagaEvents
import ServiceKit
import Spool
import SpoolSaga

/// The notification service: one message per ended order (`order-completed`, `order-cancelled`),
/// sent through a flaky external channel. It retries until the channel takes the message and
/// never compensates.
///
/// Once, through crashes: the handler only stores the message as `pending` (inbox + row in one
/// transaction, at most one row per order); a courier loop then delivers pending messages with
/// backoff and marks them `sent`. A crash between the channel accepting a message and the row
/// being marked would send it again, so every delivery carries the order id as its idempotency
/// key, which the channel honours (as e-mail and SMS APIs do): the channel holds one message per
/// order however many deliveries reached it.
public enum NotificationService {
    /// The service's name: consumer group and event source.
    public static let name = "notification"

    /// Creates the notifications table.
    public static func prepare(_ database: any DatabaseWriter, seed _: Seed) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("notification-v1") { db in
            try db.execute(sql: """
                CREATE TABLE notifications (
                    order_id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL,
                    outcome TEXT NOT NULL CHECK (outcome IN ('COMPLETED', 'CANCELLED')),
                    text TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'sent')),
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at INTEGER NOT NULL,
                    last_error TEXT
                );
                CREATE INDEX notifications_pending ON notifications(next_attempt_at) WHERE state = 'pending';
                """)
        }
        try migrator.migrate(database)
    }

    /// Registers the handlers that store one pending message per ended order.
    public static func register(on participant: SagaParticipant) {
        participant.on(OrderCompleted.self) { event, context in
            try store(orderID: event.payload.orderID, userID: event.payload.userID, outcome: "COMPLETED",
                      text: "Your order \(event.payload.orderID) is complete: \(event.payload.total) points were charged.", context.db)
        }
        participant.on(OrderCancelled.self) { event, context in
            try store(orderID: event.payload.orderID, userID: event.payload.userID, outcome: "CANCELLED",
                      text: "Your order \(event.payload.orderID) was cancelled (\(event.payload.reason)).", context.db)
        }
    }

    private static func store(orderID: String, userID: String, outcome: String, text: String, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO notifications (order_id, user_id, outcome, text, state, next_attempt_at)
            VALUES (?, ?, ?, ?, 'pending', 0)
            """).execute(arguments: [orderID, userID, outcome, text])
    }

    /// Delivers pending messages through `channel` until the task is cancelled: each message is
    /// tried at once, then after each failure with the waits of `backoff` (100 ms doubling to
    /// 5 s by default), for ever (its `maxAttempts` is not used: a notification is never given up).
    public static func runCourier(database: any DatabaseWriter, channel: FlakyChannel, poll: Duration = .milliseconds(100),
                                  backoff: RetryPolicy = RetryPolicy(), logger: Logger) async {
        while !Task.isCancelled {
            do {
                let now = EventMetadata.now()
                let due = try await database.read { db in
                    try Row.fetchAll(db, sql: """
                        SELECT order_id, user_id, text, attempts FROM notifications
                        WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT 100
                        """, arguments: [now]).map { row -> (orderID: String, userID: String, text: String, attempts: Int) in
                        (row["order_id"], row["user_id"], row["text"], row["attempts"])
                    }
                }
                for (orderID, userID, text, attempts) in due {
                    do {
                        try channel.deliver(idempotencyKey: orderID, to: userID, text: text)
                        try await database.write { db in
                            try db.cachedStatement(sql: "UPDATE notifications SET state = 'sent', attempts = ?, last_error = NULL WHERE order_id = ?")
                                .execute(arguments: [attempts + 1, orderID])
                        }
                    } catch let failure as ExternalFailure {
                        let retryAt = EventMetadata.now() + backoff.backoff(after: attempts + 1).wholeMilliseconds
                        try await database.write { db in
                            try db.cachedStatement(sql: "UPDATE notifications SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE order_id = ?")
                                .execute(arguments: [attempts + 1, retryAt, failure.reason, orderID])
                        }
                        logger.debug("delivery failed; will retry", metadata: ["order": "\(orderID)", "attempt": "\(attempts + 1)", "reason": "\(failure.reason)"])
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("courier pass failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: poll)
        }
    }
}

/// The stand-in for an external messaging provider (a ``FlakyExternalSystem``): the messages it
/// accepted, one per idempotency key (`deliveries` counts how many deliveries reached it).
public final class FlakyChannel: Sendable {
    /// The provider: its file and how it fails.
    public let system: FlakyExternalSystem

    /// Opens (creating if needed) the channel's file at `path`.
    public init(path: String, failureRate: Double, lostAckRate: Double) throws {
        system = try FlakyExternalSystem(path: path, failureRate: failureRate, lostAckRate: lostAckRate, schema: """
            CREATE TABLE IF NOT EXISTS messages (
                idempotency_key TEXT PRIMARY KEY NOT NULL,
                recipient TEXT NOT NULL,
                text TEXT NOT NULL,
                accepted_at INTEGER NOT NULL,
                deliveries INTEGER NOT NULL
            )
            """)
    }

    /// Sends `text` to `recipient`; a key already accepted is not sent twice (its `deliveries` grows).
    /// Throws ``ExternalFailure`` as configured.
    public func deliver(idempotencyKey: String, to recipient: String, text: String) throws {
        try system.call { db in
            try db.cachedStatement(sql: """
                INSERT INTO messages (idempotency_key, recipient, text, accepted_at, deliveries) VALUES (?, ?, ?, ?, 1)
                ON CONFLICT(idempotency_key) DO UPDATE SET deliveries = deliveries + 1
                """).execute(arguments: [idempotencyKey, recipient, text, EventMetadata.now()])
        }
    }
}
