import Foundation
import GRDB
import ServiceKit

/// What the services' databases hold after a run, and whether the saga's invariants hold
/// (every order ends COMPLETED or CANCELLED; initial stock = stock + quantities of
/// COMPLETED orders; initial balance = balance + what was debited, and exactly the COMPLETED
/// orders are debited, each its total less its coupon's discount; no coupon is used by two
/// orders, and a CANCELLED order's coupon is free again; each COMPLETED order has exactly one
/// active rider registration at the dispatch and each CANCELLED one none; each ended order is
/// notified once; and nothing is left in an outbox).
public struct SagaReport: Sendable {
    /// One order's row.
    public struct OrderRow: Sendable {
        public var id: String
        public var userID: String
        public var productID: String
        public var quantity: Int
        public var total: Int
        public var state: String
        public var reason: String?
        public var coupon: String?
        /// Milliseconds from creation to the last state change.
        public var duration: Int64
        public var createdAt: Int64
        public var updatedAt: Int64
    }

    public var orders: [OrderRow]
    public var stock: [String: Int]
    public var balances: [String: Int]
    /// The balance service's debited payments: order id → (user, amount, coupon).
    public var debited: [String: (userID: String, amount: Int, coupon: String?)]
    /// Coupons in use: code → order id.
    public var couponUses: [String: String]
    /// The delivery service's deliveries: order id → state (registering, scheduled, failed, cancelled).
    public var deliveries: [String: String]
    /// Deliveries whose registration the dispatch may still hold, to be withdrawn.
    public var owedWithdrawals: Int
    /// The rider dispatch's registrations: order id → (rider, active or withdrawn).
    public var registrations: [String: (rider: String, state: String)]
    /// Order id → (recipient messages accepted by the channel, deliveries that reached it).
    public var channelMessages: [String: (text: String, deliveries: Int)]
    /// Notification rows by order id → outcome, and how many are still pending.
    public var notificationOutcomes: [String: String]
    public var pendingNotifications: Int
    /// Unpublished outbox rows per service.
    public var unsentOutbox: [String: Int]
    /// Pending saga timeouts per service.
    public var pendingTimeouts: [String: Int]
    /// Sagas an orchestrator or the supervisor parked for a person, by id, with the reason.
    public var parkedSagas: [String: String]
    /// Event-sourced: whether the read model (where the orders are read) has not yet applied
    /// every order event the relay published the saga's events for.
    public var viewBehindRelay = false

    /// Reads the databases of `cluster` (read-only; the services may still run).
    public static func read(_ cluster: SagaCluster) throws -> SagaReport {
        func open(_ path: String) throws -> DatabaseQueue {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.busyMode = .timeout(5)
            return try DatabaseQueue(path: path, configuration: configuration)
        }
        // Event-sourced, the orders are read from the read model.
        let eventSourced = cluster.setup.mode == .eventSourced
        let (orders, viewBehindRelay) = try open(cluster.databasePath(.order)).read { db in
            let orders = try Row.fetchAll(db, sql: "SELECT * FROM \(eventSourced ? "orders_view" : "orders") ORDER BY created_at, id").map { row in
                OrderRow(id: row["id"], userID: row["user_id"], productID: row["product_id"], quantity: row["quantity"], total: row["total"],
                         state: row["state"], reason: row["reason"], coupon: row["coupon"],
                         duration: (row["updated_at"] as Int64) - (row["created_at"] as Int64),
                         createdAt: row["created_at"], updatedAt: row["updated_at"])
            }
            guard eventSourced, try db.tableExists("spool_projection_positions") else { return (orders, false) }
            let behind = try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM order_relay_positions r
                               LEFT JOIN spool_projection_positions p ON p.topic = 'order-events' AND p.partition = r.partition
                               WHERE p.next_offset IS NULL OR p.next_offset < r.next_offset)
                """) ?? false
            return (orders, behind)
        }
        let stock = try open(cluster.databasePath(.stock)).read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, quantity FROM products").map { ($0["id"] as String, $0["quantity"] as Int) })
        }
        let (balances, debited, couponUses) = try open(cluster.databasePath(.balance)).read { db in
            (Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, balance FROM users").map { ($0["id"] as String, $0["balance"] as Int) }),
             Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT order_id, user_id, amount, coupon FROM payments WHERE state = 'debited'").map {
                 ($0["order_id"] as String, (userID: $0["user_id"] as String, amount: $0["amount"] as Int, coupon: $0["coupon"] as String?))
             }),
             Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT code, order_id FROM coupon_uses").map { ($0["code"] as String, $0["order_id"] as String) }))
        }
        let notifications = try open(cluster.databasePath(.notification))
        let (outcomes, pending) = try notifications.read { db in
            (Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT order_id, outcome FROM notifications").map { ($0["order_id"] as String, $0["outcome"] as String) }),
             try Int.fetchOne(db, sql: "SELECT count(*) FROM notifications WHERE state = 'pending'") ?? 0)
        }
        let (deliveries, owed) = try open(cluster.databasePath(.delivery)).read { db in
            (Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT order_id, state FROM deliveries").map { ($0["order_id"] as String, $0["state"] as String) }),
             try Int.fetchOne(db, sql: "SELECT count(*) FROM deliveries WHERE withdrawal_owed = 1") ?? 0)
        }
        var registrations: [String: (rider: String, state: String)] = [:]
        if FileManager.default.fileExists(atPath: cluster.dispatchPath) {
            try open(cluster.dispatchPath).read { db in
                for row in try Row.fetchAll(db, sql: "SELECT order_id, rider_id, state FROM registrations") {
                    registrations[row["order_id"]] = (row["rider_id"], row["state"])
                }
            }
        }
        var channel: [String: (text: String, deliveries: Int)] = [:]
        if FileManager.default.fileExists(atPath: cluster.channelPath) {
            try open(cluster.channelPath).read { db in
                for row in try Row.fetchAll(db, sql: "SELECT idempotency_key, text, deliveries FROM messages") {
                    channel[row["idempotency_key"]] = (row["text"], row["deliveries"])
                }
            }
        }
        var parked: [String: String] = [:]
        var unsent: [String: Int] = [:]
        var timeouts: [String: Int] = [:]
        for component in cluster.components where component != .broker {
            try open(cluster.databasePath(component)).read { db in
                unsent[component.rawValue] = try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_outbox WHERE sent_at IS NULL") ?? 0
                timeouts[component.rawValue] = try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_timeouts") ?? 0
                // An orchestrator's or a supervisor's sagas waiting for a person.
                for (table, id) in [("spool_sagas", "id"), ("spool_supervised", "saga_id")] where try db.tableExists(table) {
                    for row in try Row.fetchAll(db, sql: "SELECT \(id) AS id, reason FROM \(table) WHERE state = 'parked'") {
                        parked[row["id"]] = (row["reason"] as String?) ?? ""
                    }
                }
            }
        }
        return SagaReport(orders: orders, stock: stock, balances: balances, debited: debited, couponUses: couponUses, deliveries: deliveries,
                          owedWithdrawals: owed, registrations: registrations, channelMessages: channel, notificationOutcomes: outcomes,
                          pendingNotifications: pending, unsentOutbox: unsent, pendingTimeouts: timeouts,
                          parkedSagas: parked, viewBehindRelay: viewBehindRelay)
    }

    /// Whether every order ended, every ended order was notified, every cancelled order's rider
    /// registration was withdrawn, every outbox is empty, and (event-sourced) the orders read are
    /// those the relay published events for.
    public var isSettled: Bool {
        !viewBehindRelay && orders.allSatisfy { $0.state != "PENDING" } && channelMessages.count >= orders.count && pendingNotifications == 0
            && unsentOutbox.values.allSatisfy { $0 == 0 } && owedWithdrawals == 0
            && !orders.contains { $0.state == "CANCELLED" && registrations[$0.id]?.state == "active" }
    }

    /// Every broken invariant, one line each (empty: all hold).
    public func violations(seed: Seed) -> [String] {
        var problems: [String] = []
        for order in orders where order.state != "COMPLETED" && order.state != "CANCELLED" {
            problems.append("order \(order.id) is \(order.state)" + (parkedSagas[order.id].map { ", its saga parked: \($0)" } ?? ""))
        }
        let completed = orders.filter { $0.state == "COMPLETED" }
        for product in seed.products {
            let sold = completed.filter { $0.productID == product.id }.map(\.quantity).reduce(0, +)
            let left = stock[product.id] ?? 0
            if product.stock != left + sold {
                problems.append("stock of \(product.id): initial \(product.stock) ≠ \(left) in stock + \(sold) in completed orders")
            }
        }
        for user in seed.users {
            let spent = debited.values.filter { $0.userID == user.id }.map(\.amount).reduce(0, +)
            let left = balances[user.id] ?? 0
            if user.balance != left + spent {
                problems.append("balance of \(user.id): initial \(user.balance) ≠ \(left) left + \(spent) debited")
            }
        }
        let discounts = Dictionary(uniqueKeysWithValues: seed.coupons.map { ($0.code, $0.discount) })
        for order in completed {
            guard let payment = debited[order.id] else {
                problems.append("order \(order.id) is COMPLETED but was never debited")
                continue
            }
            let price = Swift.max(0, order.total - (order.coupon.flatMap { discounts[$0] } ?? 0))
            if payment.amount != price || payment.coupon != order.coupon {
                problems.append("order \(order.id) was debited \(payment.amount) with coupon \(payment.coupon ?? "-"), not \(price) with \(order.coupon ?? "-")")
            }
            if let coupon = order.coupon, couponUses[coupon] != order.id {
                problems.append("order \(order.id) used coupon \(coupon), which is not recorded as its use")
            }
        }
        let completedIDs = Set(completed.map(\.id))
        for (orderID, _) in debited where !completedIDs.contains(orderID) {
            problems.append("order \(orderID) is debited but not COMPLETED")
        }
        for (code, orderID) in couponUses where !completedIDs.contains(orderID) {
            problems.append("coupon \(code) is held by order \(orderID), which is not COMPLETED")
        }
        for (code, users) in Dictionary(grouping: debited.values.compactMap(\.coupon), by: { $0 }) where users.count > 1 {
            problems.append("coupon \(code) was used by \(users.count) orders")
        }
        for order in orders where order.state != "PENDING" {
            if channelMessages[order.id] == nil { problems.append("order \(order.id) (\(order.state)) was never notified") }
            if let outcome = notificationOutcomes[order.id], outcome != order.state {
                problems.append("order \(order.id) is \(order.state) but was notified as \(outcome)")
            }
        }
        for order in orders {
            let registration = registrations[order.id]
            if order.state == "COMPLETED", registration?.state != "active" || deliveries[order.id] != "scheduled" {
                problems.append("order \(order.id) is COMPLETED but its delivery is \(deliveries[order.id] ?? "missing") and its rider registration \(registration?.state ?? "missing")")
            }
            if order.state == "CANCELLED", let registration, registration.state == "active" {
                problems.append("order \(order.id) is CANCELLED but rider \(registration.rider) is still registered for it")
            }
        }
        let known = Set(orders.map(\.id))
        for key in registrations.keys where !known.contains(key) { problems.append("a rider registration for unknown order \(key)") }
        for key in channelMessages.keys where !known.contains(key) { problems.append("a message for unknown order \(key)") }
        for (service, count) in unsentOutbox.sorted(by: { $0.key < $1.key }) where count > 0 {
            problems.append("\(count) event(s) stuck in the \(service) outbox")
        }
        if pendingNotifications > 0 { problems.append("\(pendingNotifications) notification(s) still pending") }
        if owedWithdrawals > 0 { problems.append("\(owedWithdrawals) rider registration(s) still to withdraw") }
        return problems
    }

    /// Orders per final state and reason kind.
    public var summary: [(String, Int)] {
        Dictionary(grouping: orders) { order -> String in
            guard let reason = order.reason else { return order.state }
            return "\(order.state) (\(reason.split(separator: ":").first ?? ""))"
        }.map { ($0.key, $0.value.count) }.sorted { $0.0 < $1.0 }
    }

    /// Median and 99th percentile of creation-to-end time in milliseconds, over ended orders.
    public var latency: (p50: Int64, p99: Int64)? {
        let durations = orders.filter { $0.state != "PENDING" }.map(\.duration).sorted()
        guard !durations.isEmpty else { return nil }
        func percentile(_ p: Double) -> Int64 { durations[Swift.min(durations.count - 1, Int((Double(durations.count) * p).rounded(.up)) - 1)] }
        return (percentile(0.5), percentile(0.99))
    }

    /// Ended orders per second between the first creation and the last end.
    public var throughput: Double? {
        guard let first = orders.map(\.createdAt).min(), let last = orders.map(\.updatedAt).max(), last > first else { return nil }
        return Double(orders.filter { $0.state != "PENDING" }.count) / (Double(last - first) / 1000)
    }
}
