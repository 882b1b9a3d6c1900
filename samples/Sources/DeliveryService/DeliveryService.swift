import Foundation
import GRDB
import Logging
import SagaEvents
import ServiceKit
import Spool
import SpoolSaga

/// The delivery service: hands each paid order to a rider, through an external rider dispatch
/// that fails a share of its calls. Registering a rider is never undone by the saga's other
/// failures, only retried; a delivery and its rider matching can be cancelled.
///
/// - Choreography and supervised: `payment-completed` asks for a delivery; once the dispatch
///   registered a rider the service emits `delivery-scheduled` (the order completes), and if it
///   gives up, `delivery-failed` (the order service cancels, or the supervisor escalates).
///   `order-cancelled` cancels the delivery (`delivery-cancelled`).
/// - Orchestration: the command `register-delivery` is accepted in its transaction and answered
///   once the dispatch registered a rider or the service gave up (``SagaParticipant/accept(_:_:)``);
///   `cancel-delivery` cancels and is answered at once.
///
/// Once, through crashes: handlers only write rows (inbox and row in one transaction); a courier
/// loop makes the calls to the dispatch, outside any transaction, in one sequence per service,
/// and records each outcome with its event in one transaction. Every call carries the order id
/// as its idempotency key, so a registration repeated after a lost acknowledgement or a crash
/// gets the same rider. A cancelled delivery whose registration may have reached the dispatch
/// owes a withdrawal, which the courier makes after any registration call of that order.
public enum DeliveryService {
    /// The service's name: consumer group and event source.
    public static let name = "delivery"

    /// Creates the tables and loads the seed's users' zones into an empty database.
    public static func prepare(_ database: any DatabaseWriter, seed: Seed) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("delivery-v1") { db in
            try db.execute(sql: """
                CREATE TABLE addresses (user_id TEXT PRIMARY KEY NOT NULL, zone TEXT NOT NULL);
                CREATE TABLE deliveries (
                    order_id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL,
                    zone TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('registering', 'scheduled', 'failed', 'cancelled')),
                    rider_id TEXT,
                    command_id TEXT,
                    withdrawal_owed INTEGER NOT NULL DEFAULT 0,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT
                );
                CREATE INDEX deliveries_registering ON deliveries(next_attempt_at) WHERE state = 'registering';
                CREATE INDEX deliveries_withdrawals ON deliveries(order_id) WHERE withdrawal_owed = 1;
                """)
            for user in seed.users {
                try db.cachedStatement(sql: "INSERT INTO addresses (user_id, zone) VALUES (?, ?)").execute(arguments: [user.id, user.deliveryZone])
            }
        }
        try migrator.migrate(database)
    }

    /// Registers the handlers of `mode` on `participant`.
    public static func register(on participant: SagaParticipant, mode: SagaMode = .choreography) {
        switch mode {
        case .choreography, .eventSourced, .supervised:
            participant.on(PaymentCompleted.self) { event, context in
                _ = try request(orderID: event.payload.orderID, userID: event.payload.userID, commandID: nil, db: context.db)
            }
            participant.on(OrderCancelled.self) { event, context in
                if try cancel(orderID: event.payload.orderID, userID: event.payload.userID, db: context.db) {
                    try context.emit(DeliveryCancelled(orderID: event.payload.orderID), role: .compensation)
                }
            }
        case .orchestration:
            participant.accept(RegisterDeliveryCommand.self) { command, context in
                let order = command.payload
                return try request(orderID: order.orderID, userID: order.userID, commandID: command.metadata.eventID, db: context.db)
                    .map { DeliveryRegistration(orderID: order.orderID, riderID: nil, refusal: $0) }
            }
            participant.handle(CancelDeliveryCommand.self) { command, context in
                _ = try cancel(orderID: command.payload.orderID, userID: "", db: context.db)
                return DeliveryCancellation(orderID: command.payload.orderID)
            }
        }
    }

    /// Records that `orderID` wants a rider (the courier registers one), answering `commandID`
    /// then if given; returns why not (the order was cancelled first), or nil.
    static func request(orderID: String, userID: String, commandID: String?, db: Database) throws -> String? {
        if let state = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM deliveries WHERE order_id = ?"), arguments: [orderID]) {
            return state == "cancelled" ? "order already cancelled" : nil
        }
        let zone = try String.fetchOne(db.cachedStatement(sql: "SELECT zone FROM addresses WHERE user_id = ?"), arguments: [userID]) ?? "unknown"
        try db.cachedStatement(sql: "INSERT INTO deliveries (order_id, user_id, zone, state, command_id) VALUES (?, ?, ?, 'registering', ?)")
            .execute(arguments: [orderID, userID, zone, commandID])
        return nil
    }

    /// Cancels `orderID`'s delivery; a registration that may have reached the dispatch is owed a
    /// withdrawal. An order never seen is recorded cancelled, so that a late request is refused.
    /// Returns whether a delivery in progress or scheduled was cancelled.
    static func cancel(orderID: String, userID: String, db: Database) throws -> Bool {
        guard let state = try String.fetchOne(db.cachedStatement(sql: "SELECT state FROM deliveries WHERE order_id = ?"), arguments: [orderID]) else {
            try db.cachedStatement(sql: "INSERT INTO deliveries (order_id, user_id, zone, state) VALUES (?, ?, '', 'cancelled')").execute(arguments: [orderID, userID])
            return false
        }
        guard state != "cancelled" else { return false }
        try db.cachedStatement(sql: "UPDATE deliveries SET state = 'cancelled', withdrawal_owed = 1 WHERE order_id = ?").execute(arguments: [orderID])
        return state != "failed"
    }

    /// Makes the calls to `dispatch` until the task is cancelled: registers a rider for each
    /// delivery waiting for one, at once and then after each failure with the waits of `retry`,
    /// giving up after its `maxAttempts`; and withdraws the registrations owed a withdrawal.
    public static func runCourier(participant: SagaParticipant, dispatch: RiderDispatch, retry: RetryPolicy = RetryPolicy(maxAttempts: 10, maxBackoff: .seconds(1)),
                                  poll: Duration = .milliseconds(50), logger: Logger) async {
        while !Task.isCancelled {
            do {
                try await registerDue(participant: participant, dispatch: dispatch, retry: retry, logger: logger)
                try await withdrawOwed(participant.database, dispatch: dispatch)
            } catch is CancellationError {
                return
            } catch {
                logger.warning("courier pass failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: poll)
        }
    }

    private static func registerDue(participant: SagaParticipant, dispatch: RiderDispatch, retry: RetryPolicy, logger: Logger) async throws {
        let due = try await participant.database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT order_id, zone, attempts FROM deliveries WHERE state = 'registering' AND next_attempt_at <= ?
                ORDER BY next_attempt_at LIMIT 100
                """, arguments: [EventMetadata.now()]).map { row -> (orderID: String, zone: String, attempts: Int) in
                (row["order_id"], row["zone"], row["attempts"])
            }
        }
        guard !due.isEmpty else { return }
        var outcomes: [(orderID: String, attempt: Int, outcome: Result<String, ExternalFailure>)] = []
        for (orderID, zone, attempts) in due {
            do {
                outcomes.append((orderID, attempts + 1, .success(try dispatch.register(orderID: orderID, zone: zone))))
            } catch let failure as ExternalFailure {
                outcomes.append((orderID, attempts + 1, .failure(failure)))
                logger.debug("rider registration failed", metadata: ["order": "\(orderID)", "attempt": "\(attempts + 1)", "reason": "\(failure.reason)"])
            }
        }
        // One transaction for the pass: the calls are idempotent, so a crash before it only repeats them.
        try await participant.transaction { [outcomes] context in
            for (orderID, attempt, outcome) in outcomes { try record(outcome, of: orderID, attempt: attempt, retry: retry, context) }
        }
    }

    /// Records the outcome of a registration call and emits what it means, if the delivery still
    /// waits for it (a cancellation may have come meanwhile: its withdrawal follows this call).
    private static func record(_ outcome: Result<String, ExternalFailure>, of orderID: String, attempt: Int, retry: RetryPolicy,
                               _ context: SagaContext) throws {
        guard let row = try Row.fetchOne(context.db.cachedStatement(sql: "SELECT user_id, command_id FROM deliveries WHERE order_id = ? AND state = 'registering'"),
                                         arguments: [orderID]) else { return }
        let userID: String = row["user_id"]
        let commandID: String? = row["command_id"]
        switch outcome {
        case .success(let rider):
            try context.db.cachedStatement(sql: "UPDATE deliveries SET state = 'scheduled', rider_id = ?, attempts = ?, last_error = NULL WHERE order_id = ?")
                .execute(arguments: [rider, attempt, orderID])
            if let commandID {
                try context.reply(DeliveryRegistration(orderID: orderID, riderID: rider, refusal: nil), toCommand: commandID, correlationID: orderID)
            } else {
                try context.emit(DeliveryScheduled(orderID: orderID, userID: userID, riderID: rider), correlationID: orderID)
            }
        case .failure(let failure) where attempt < retry.maxAttempts:
            try context.db.cachedStatement(sql: "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE order_id = ?")
                .execute(arguments: [attempt, EventMetadata.now() + retry.backoff(after: attempt).wholeMilliseconds, failure.reason, orderID])
        case .failure(let failure):
            // An attempt whose acknowledgement was lost may have registered a rider: withdraw it.
            let reason = "no rider registered after \(attempt) attempts: \(failure.reason)"
            try context.db.cachedStatement(sql: "UPDATE deliveries SET state = 'failed', withdrawal_owed = 1, attempts = ?, last_error = ? WHERE order_id = ?")
                .execute(arguments: [attempt, failure.reason, orderID])
            if let commandID {
                try context.reply(DeliveryRegistration(orderID: orderID, riderID: nil, refusal: reason), toCommand: commandID, correlationID: orderID)
            } else {
                try context.emit(DeliveryFailed(orderID: orderID, reason: reason), role: .failure, correlationID: orderID)
            }
        }
    }

    private static func withdrawOwed(_ database: any DatabaseWriter, dispatch: RiderDispatch) async throws {
        let owed = try await database.read { db in
            try String.fetchAll(db, sql: "SELECT order_id FROM deliveries WHERE withdrawal_owed = 1 LIMIT 100")
        }
        guard !owed.isEmpty else { return }
        for orderID in owed { try dispatch.withdraw(orderID: orderID) }
        try await database.write { db in
            for orderID in owed {
                try db.cachedStatement(sql: "UPDATE deliveries SET withdrawal_owed = 0 WHERE order_id = ?").execute(arguments: [orderID])
            }
        }
    }
}

/// The stand-in for an external rider dispatch (a ``FlakyExternalSystem``): its riders and the
/// zones they serve, and one registration per order (its idempotency key), `active` or `withdrawn`.
public final class RiderDispatch: Sendable {
    /// The provider: its file and how it fails.
    public let system: FlakyExternalSystem

    /// Opens (creating if needed) the dispatch's file at `path`, knowing `riders` (added if new).
    public init(path: String, riders: [Seed.Rider], failureRate: Double, lostAckRate: Double) throws {
        system = try FlakyExternalSystem(path: path, failureRate: failureRate, lostAckRate: lostAckRate, schema: """
            CREATE TABLE IF NOT EXISTS rider_zones (rider_id TEXT NOT NULL, zone TEXT NOT NULL, PRIMARY KEY (rider_id, zone));
            CREATE TABLE IF NOT EXISTS registrations (
                order_id TEXT PRIMARY KEY NOT NULL,
                rider_id TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('active', 'withdrawn')),
                requests INTEGER NOT NULL
            );
            """)
        try system.database.write { db in
            for rider in riders {
                for zone in rider.zones {
                    try db.execute(sql: "INSERT OR IGNORE INTO rider_zones (rider_id, zone) VALUES (?, ?)", arguments: [rider.id, zone])
                }
            }
        }
    }

    /// Registers a rider for `orderID` in `zone` and returns it: the order's rider if it has one
    /// already (the key), else the rider of the zone with the fewest active registrations.
    /// Throws ``ExternalFailure`` as configured, when no rider serves `zone`, or for a withdrawn order.
    public func register(orderID: String, zone: String) throws -> String {
        try system.call { db in
            if let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT rider_id, state FROM registrations WHERE order_id = ?"), arguments: [orderID]) {
                guard row["state"] as String == "active" else { throw ExternalFailure(reason: "order \(orderID) was withdrawn") }
                try db.cachedStatement(sql: "UPDATE registrations SET requests = requests + 1 WHERE order_id = ?").execute(arguments: [orderID])
                return row["rider_id"]
            }
            guard let rider = try String.fetchOne(db.cachedStatement(sql: """
                SELECT z.rider_id FROM rider_zones z
                LEFT JOIN registrations r ON r.rider_id = z.rider_id AND r.state = 'active'
                WHERE z.zone = ? GROUP BY z.rider_id ORDER BY count(r.order_id), z.rider_id LIMIT 1
                """), arguments: [zone]) else {
                throw ExternalFailure(reason: "no rider serves zone \(zone)")
            }
            try db.cachedStatement(sql: "INSERT INTO registrations (order_id, rider_id, state, requests) VALUES (?, ?, 'active', 1)")
                .execute(arguments: [orderID, rider])
            return rider
        }
    }

    /// Withdraws `orderID`'s registration, freeing its rider; nothing if it has none. (The
    /// dispatch is flaky for registrations only: a withdrawal is one reliable call.)
    public func withdraw(orderID: String) throws {
        try system.database.write { db in
            try db.cachedStatement(sql: "UPDATE registrations SET state = 'withdrawn' WHERE order_id = ?").execute(arguments: [orderID])
        }
    }
}
