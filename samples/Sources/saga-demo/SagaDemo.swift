import ArgumentParser
import Foundation
import SagaHarness
import ServiceKit
import SpoolTesting

/// `saga-demo`: the order saga end to end, on real processes.
@main
struct SagaDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "saga-demo",
        abstract: "Start spoold and the services, place a mix of orders, wait for every saga to end, report, stop.",
        discussion: """
            Everything runs on its embedded defaults (broker tcp://127.0.0.1:7070, order API on \
            http://127.0.0.1:8080, databases and logs in --dir), so those ports must be free.
            Supervised, it then places an order for a user no rider serves: its delivery fails for good, \
            the supervisor parks the saga, and the demo resolves it with `spool saga compensate ID`, \
            showing the refund, the coupon and the stock back.
            Exit status 0 if every invariant holds, 1 otherwise.
            Example:
              saga-demo --spoold ../.build/release/spoold --orders 60
            """
    )

    @Option(help: "The spoold executable.")
    var spoold: String

    @Option(help: "The spool CLI (supervised: resolves the parked saga). Default: spool next to spoold.")
    var spool: String?

    @Option(help: "Working directory (created; emptied first): broker data, databases, logs. Default: a new temporary directory.")
    var dir: String?

    @Option(help: "How many orders to place.")
    var orders = 40

    @Option(help: "How many orders are placed at once (POST requests in flight; the sagas they start overlap).")
    var concurrency = 4

    @Flag(help: "Place each order only once the one before ended, so one saga runs at a time: POST → final state is then one order's own time (its three hops and the POST's commit). Overrides --concurrency.")
    var oneAtATime = false

    @Option(name: .customLong("mode"),
            help: "How the services run the saga: choreography (events), orchestration (the order service's commands), supervised (events, and a supervisor answers failures) or event-sourced (the choreography, the order service event-sourced). Default: choreography.")
    var chosenMode: SagaMode?

    @Flag(help: "Shorthand for --mode event-sourced.")
    var eventSourced = false

    /// The mode chosen by `--mode` or `--event-sourced`.
    private var mode: SagaMode { eventSourced ? .eventSourced : chosenMode ?? .choreography }

    @Option(help: "Random seed of the order mix.")
    var seed: UInt64 = 2026

    @Option(help: "Multiply the seed's stock and balances by this (for runs with many orders; passes --seed to the services).")
    var scale = 1

    @Option(help: "How long to wait for every saga to end, in seconds.")
    var timeout = 120

    func validate() throws {
        guard orders > 0, concurrency > 0, scale > 0 else { throw ValidationError("--orders, --concurrency and --scale must be positive") }
        if eventSourced, let chosenMode, chosenMode != .eventSourced { throw ValidationError("--event-sourced contradicts --mode \(chosenMode.rawValue)") }
    }

    func run() async throws {
        // Everything runs on the embedded defaults: a broker or service already there would be used by mistake.
        for (port, what) in [(7070, "the broker"), (8080, "the order API")] where !loopbackPortIsFree(port) {
            throw HarnessError("saga-demo: port \(port) (\(what)'s default) is in use on 127.0.0.1; stop what holds it (make run?) and try again")
        }
        let directory = dir ?? NSTemporaryDirectory() + "spool-saga-demo-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let serviceDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let spooldPath = URL(fileURLWithPath: spoold).standardizedFileURL.path
        let data = try Seed.load(from: nil).scaled(by: scale)
        var serviceArguments: [String] = []
        if scale > 1 {
            try data.write(to: "\(directory)/seed.json")
            serviceArguments = ["--seed", "seed.json"]
        }
        let cluster = SagaCluster(.init(spoold: spooldPath, serviceDirectory: serviceDirectory, directory: directory,
                                        serviceArguments: serviceArguments, mode: mode))
        print("saga-demo: broker and services in \(directory) (logs: *.log there), the saga by \(mode.rawValue)")
        try cluster.startAll()
        let client = OrderClient(baseURL: cluster.orderURL)
        do {
            try await client.waitUntilUp()
            let mix = OrderMix(count: orders, over: data, seed: seed)
            print(oneAtATime ? "placing \(orders) orders, each once the one before ended …" : "placing \(orders) orders, \(concurrency) at a time …")
            try await place(mix.requests, through: client)
            print("waiting for every saga to end …")
            var settled = try await waitUntilSettled(cluster)
            if settled, mode == .supervised { settled = try await showParkedSaga(cluster, through: client, seed: data) }
            let stuck = await cluster.stopAll()
            let final = try SagaReport.read(cluster)
            print(render(final, seed: data, settled: settled, stuck: stuck, setup: cluster.setup))
            if !settled || !stuck.isEmpty || !final.violations(seed: data).isEmpty { throw ExitCode.failure }
        } catch {
            await cluster.stopAll()
            throw error
        }
    }

    private func place(_ requests: [OrderMix.Request], through client: OrderClient) async throws {
        if oneAtATime {
            for request in requests {
                let order = try await client.placePatiently(userID: request.userID, productID: request.productID, quantity: request.quantity,
                                                            coupon: request.coupon)
                // The figure comes from the order's own timestamps: a 5 ms poll only spaces the orders out.
                // Event-sourced, the read asks for the version the POST wrote: it never misses the order.
                while try await client.order(order.id, minVersion: order.version)?.state ?? "PENDING" == "PENDING" {
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, request) in requests.enumerated() {
                if index >= concurrency { try await group.next() }
                group.addTask {
                    _ = try await client.placePatiently(userID: request.userID, productID: request.productID, quantity: request.quantity,
                                                        coupon: request.coupon)
                }
            }
            try await group.waitForAll()
        }
    }

    /// Whether every saga ended (and was notified, and every outbox emptied) within `timeout`.
    private func waitUntilSettled(_ cluster: SagaCluster) async throws -> Bool {
        try await waitFor(cluster) { $0.isSettled } != nil
    }

    /// The first report of `cluster` that satisfies `condition`, read every 200 ms; nil after `timeout`.
    private func waitFor(_ cluster: SagaCluster, _ condition: (SagaReport) -> Bool) async throws -> SagaReport? {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            let report = try SagaReport.read(cluster)
            if condition(report) { return report }
            try await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    /// Supervised: an order of a user no rider serves, paid with a free coupon. Its delivery fails
    /// for good, the supervisor parks the saga; `spool saga compensate` resolves it. Returns
    /// whether it ended CANCELLED with everything given back.
    private func showParkedSaga(_ cluster: SagaCluster, through client: OrderClient, seed data: Seed) async throws -> Bool {
        guard let user = data.users.first(where: { !data.isServed($0) }), let product = data.products.min(by: { $0.price < $1.price }) else {
            print("(no user of the seed lives where no rider goes: nothing to park)")
            return true
        }
        let spool = self.spool ?? URL(fileURLWithPath: spoold).deletingLastPathComponent().appendingPathComponent("spool").path
        let before = try SagaReport.read(cluster)
        let coupon = data.coupons.first { before.couponUses[$0.code] == nil }?.code
        print("\nA delivery no rider can make: \(user.id) lives in zone \(user.deliveryZone), which no rider serves.")
        let order = try await client.placePatiently(userID: user.id, productID: product.id, quantity: 1, coupon: coupon)
        guard let parked = try await waitFor(cluster, { $0.parkedSagas[order.id] != nil }) else {
            print("order \(order.id) was not parked within \(timeout) s")
            return false
        }
        func holdings(_ report: SagaReport) -> String {
            "\(user.id) has \(report.balances[user.id] ?? 0) points, \(report.stock[product.id] ?? 0) \(product.id) in stock"
                + (coupon.map { ", coupon \($0) " + (report.couponUses[$0] == nil ? "free" : "used") } ?? "")
        }
        print("before the order: \(holdings(before))")
        print("parked:           \(holdings(parked))")
        for arguments in [["saga", "show", order.id], ["saga", "compensate", order.id, "--by", "saga-demo"]] {
            print("$ spool \(arguments.joined(separator: " "))")
            let (status, output) = try runToEnd(spool, arguments + ["--broker", cluster.brokerEndpoint])
            print(output.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            guard status == 0 else { return false }
        }
        guard let after = try await waitFor(cluster, { report in report.isSettled && report.orders.contains { $0.id == order.id && $0.state != "PENDING" } }) else {
            print("order \(order.id) did not end within \(timeout) s of the compensation")
            return false
        }
        let ended = after.orders.first { $0.id == order.id }
        print("compensated:      \(holdings(after)); the order is \(ended?.state ?? "?") (\(ended?.reason ?? ""))")
        return ended?.state == "CANCELLED" && after.balances[user.id] == before.balances[user.id] && after.stock[product.id] == before.stock[product.id]
            && coupon.map { after.couponUses[$0] == nil } ?? true
    }

    private func render(_ report: SagaReport, seed: Seed, settled: Bool, stuck: [SagaCluster.Component], setup: SagaCluster.Setup) -> String {
        var lines: [String] = []
        lines.append("")
        lines.append(pad("ORDER", 16) + pad("USER", 7) + pad("PRODUCT", 8) + pad("QTY", 5) + pad("TOTAL", 7) + pad("STATE", 11) + "REASON")
        for order in report.orders.prefix(100) {
            lines.append(pad(order.id, 16) + pad(order.userID, 7) + pad(order.productID, 8) + pad("\(order.quantity)", 5)
                         + pad("\(order.total)", 7) + pad(order.state, 11) + (order.reason ?? ""))
        }
        if report.orders.count > 100 { lines.append("… \(report.orders.count - 100) more in \(setup.directory)/order.sqlite") }
        lines.append("")
        lines.append("orders: " + report.summary.map { "\($0.1) \($0.0)" }.joined(separator: ", "))
        let stockNow = report.stock.values.reduce(0, +), stockThen = seed.products.map(\.stock).reduce(0, +)
        let balanceNow = report.balances.values.reduce(0, +), balanceThen = seed.users.map(\.balance).reduce(0, +)
        let completed = report.orders.filter { $0.state == "COMPLETED" }
        lines.append("stock:   \(stockThen) at start = \(stockNow) in stock + \(completed.map(\.quantity).reduce(0, +)) sold")
        lines.append("balance: \(balanceThen) at start = \(balanceNow) left + \(report.debited.values.map(\.amount).reduce(0, +)) spent")
        let wanted = report.orders.filter { $0.coupon != nil }
        lines.append("coupons: \(wanted.count) orders came with one; \(report.couponUses.count) of \(seed.coupons.count) coupons used, each once; "
                     + "\(wanted.filter { $0.reason?.contains("already used") == true }.count) refused as already used")
        let registrations = report.registrations.values
        lines.append("deliveries: \(registrations.filter { $0.state == "active" }.count) riders registered for \(completed.count) completed orders; "
                     + "\(registrations.filter { $0.state == "withdrawn" }.count) registrations withdrawn with their cancelled orders")
        let deliveries = report.channelMessages.values.map(\.deliveries).reduce(0, +)
        lines.append("notifications: \(report.channelMessages.count) messages for \(report.orders.count) orders (\(deliveries) deliveries reached the channel; the repeats were absorbed by the idempotency key)")
        if let latency = report.latency, let throughput = report.throughput {
            lines.append(String(format: "time to end (POST → final state): p50 %d ms, p99 %d ms; %.1f orders/s", latency.p50, latency.p99, throughput))
        }
        let problems = report.violations(seed: seed) + (settled ? [] : ["not every saga ended within \(timeout) s"])
            + stuck.map { "\($0.rawValue) did not stop on SIGTERM" }
        lines.append(problems.isEmpty ? "invariants: all hold ✔" : "invariants: BROKEN ✘\n  " + problems.joined(separator: "\n  "))
        return lines.joined(separator: "\n")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
