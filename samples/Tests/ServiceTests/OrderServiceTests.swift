import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import Logging
import Metrics
import OrderService
import Prometheus
import SagaEvents
import SagaHarness
import ServiceKit
import Spool
import SpoolTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct OrderServiceTests {
    private func start(orderTimeout: Duration = .seconds(30)) async throws -> (ServiceUnderTest, OrderService) {
        let box = Box()
        let service = try await ServiceUnderTest(OrderService.name, prepare: OrderService.prepare) { participant, seed in
            let orders = OrderService(participant: participant, seed: seed, orderTimeout: orderTimeout)
            orders.register()
            box.orders = orders
        }
        return (service, box.orders!)
    }

    private final class Box: @unchecked Sendable { var orders: OrderService? }

    @Test func anOrderIsStoredPendingWithItsEventAndCompletesOnceItsDeliveryIsScheduled() async throws {
        let (service, orders) = try await start()
        let order = try await orders.place(userID: "ada", productID: "coffee", quantity: 2)
        #expect(order.state == .pending && order.total == 24)
        let created = try await service.waitForEvents(OrderCreated.self, count: 1)
        #expect(created.map(\.payload) == [OrderCreated(orderID: order.id, userID: "ada", productID: "coffee", quantity: 2, total: 24)])
        #expect(created.first?.metadata.correlationID == order.id && created.first?.metadata.causationID == nil)

        // Paid is not done: the order waits for its rider.
        try await service.publish(PaymentCompleted(orderID: order.id, userID: "ada", amount: 24), saga: order.id)
        try await service.publish(DeliveryScheduled(orderID: order.id, userID: "ada", riderID: "rita"), saga: order.id)
        let completed = try await service.waitForEvents(OrderCompleted.self, count: 1)
        #expect(completed.map(\.payload) == [OrderCompleted(orderID: order.id, userID: "ada", total: 24)])
        #expect(try await orders.order(order.id)?.state == .completed)
        // A late failure changes nothing: the order has ended.
        try await service.publish(DeliveryFailed(orderID: order.id, reason: "late"), saga: order.id)
        #expect(await service.waitUntilHandled(2))
        #expect(try await orders.order(order.id)?.state == .completed)
        #expect(try await service.events(OrderCancelled.self).isEmpty)
        // The order timeout was cancelled with the end.
        #expect(try await service.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_timeouts") } == 0)
        try await service.stop()
    }

    @Test func aFailedStepCancelsWithTheReason() async throws {
        let (service, orders) = try await start()
        let order = try await orders.place(userID: "bob", productID: "dates", quantity: 3)
        try await service.publish(StockFailed(orderID: order.id, reason: "out of stock: 2 dates left, 3 wanted"), saga: order.id)
        let undelivered = try await orders.place(userID: "gus", productID: "apple", quantity: 1)
        try await service.publish(DeliveryFailed(orderID: undelivered.id, reason: "no rider registered after 6 attempts: no rider serves zone harbour"),
                                  saga: undelivered.id)
        let cancelled = try await service.waitForEvents(OrderCancelled.self, count: 2)
        #expect(Set(cancelled.map(\.payload.reason)) == ["stock: out of stock: 2 dates left, 3 wanted",
                                                         "delivery: no rider registered after 6 attempts: no rider serves zone harbour"])
        #expect(try await service.events(OrderCancelled.self).first?.record.headers.text(of: EventHeaderName.role) == "failure")
        let stored = try await orders.order(order.id)
        #expect(stored?.state == .cancelled && stored?.reason == "stock: out of stock: 2 dates left, 3 wanted")
        try await service.stop()
    }

    @Test func anOrderWithoutPaymentAndDeliveryIsCancelledByItsTimeout() async throws {
        let (service, orders) = try await start(orderTimeout: .milliseconds(200))
        let order = try await orders.place(userID: "eve", productID: "apple", quantity: 1)
        let cancelled = try await service.waitForEvents(OrderCancelled.self, count: 1)
        #expect(cancelled.first?.payload.reason.hasPrefix("timeout: no payment and delivery within") == true)
        let timeouts = try await service.events(OrderTimedOut.self)
        #expect(timeouts.map(\.event.payload.orderID) == [order.id])
        #expect(timeouts.first?.record.headers.text(of: EventHeaderName.role) == "timeout")
        #expect(try await orders.order(order.id)?.state == .cancelled)
        try await service.stop()
    }

    @Test func theHTTPAPIPlacesListsAndRefusesBadRequests() async throws {
        let (service, orders) = try await start()
        let port = try freeLoopbackPort()
        let server = Task { try await orders.application(port: port, logger: Logger(label: "test")).run() }
        let client = OrderClient(baseURL: URL(string: "http://127.0.0.1:\(port)")!)
        try await client.waitUntilUp(timeout: .seconds(20))

        let placed = try await client.place(userID: "chen", productID: "bread", quantity: 3)
        #expect(placed.state == "PENDING" && placed.total == 15 && placed.userId == "chen")
        let refused = await #expect(throws: HarnessError.self) { try await client.place(userID: "chen", productID: "caviar", quantity: 1) }
        #expect(refused?.description.contains("HTTP 400") == true && refused?.description.contains("unknown product 'caviar'") == true)
        await #expect(throws: HarnessError.self) { try await client.place(userID: "chen", productID: "bread", quantity: 0) }
        #expect(try await client.orders(state: "pending").map(\.id) == [placed.id])
        #expect(try await client.orders(state: "COMPLETED").isEmpty)
        await #expect(throws: HarnessError.self) { try await client.orders(state: "LOST") }

        #expect(try await client.order(placed.id)?.id == placed.id)
        #expect(try await client.order("o-nothing") == nil)
        server.cancel()
        _ = try? await server.value
        try await service.stop()
    }

    @Test func theHTTPPortServesTheSagaKitsMetricsInPrometheusText() async throws {
        // The registry is bound to this task (and those it starts) as the executable binds it to the process.
        let registry = PrometheusCollectorRegistry()
        try await withMetricsFactory(PrometheusMetricsFactory(registry: registry)) {
            let (service, orders) = try await start()
            let port = try freeLoopbackPort()
            let server = Task { try await orders.application(port: port, logger: Logger(label: "test"), metrics: ServiceMetrics(registry: registry)).run() }
            let client = OrderClient(baseURL: URL(string: "http://127.0.0.1:\(port)")!)
            try await client.waitUntilUp(timeout: .seconds(20))
            let placed = try await client.place(userID: "chen", productID: "bread", quantity: 3)
            try await service.publish(StockFailed(orderID: placed.id, reason: "none left"), saga: placed.id)

            let handled = PrometheusSample(name: "spool_saga_events_handled_total", labels: ["topic": StockFailed.topic, "group": OrderService.name])
            let emitted = PrometheusSample(name: "spool_saga_events_emitted_total", labels: ["topic": OrderCreated.topic])
            var samples: [PrometheusSample: Double] = [:]
            #expect(try await eventually {
                let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
                samples = try PrometheusSample.parse(String(decoding: data, as: UTF8.self))
                return (samples[handled] ?? 0) > 0 && (samples[emitted] ?? 0) > 0
            })
            #expect(samples[handled] == 1 && samples[emitted] == 1)
            #expect(samples.keys.contains { $0.name == "spool_saga_handler_duration_seconds_bucket" && $0.labels["le"] == "+Inf" },
                    "the handler's timer is a histogram")
            server.cancel()
            _ = try? await server.value
            try await service.stop()
        }
    }

    @Test func inTheOrchestrationAnOrderIsASagaInstanceWhoseStepsAreCommandsAndWhoseEndIsTheOrders() async throws {
        let box = Box()
        let service = try await ServiceUnderTest(OrderService.name, prepare: OrderService.prepare) { participant, seed in
            let orders = OrderService(participant: participant, seed: seed, mode: .orchestration, stepTimeout: .seconds(30))
            orders.register()
            box.orders = orders
        }
        let orders = try #require(box.orders)
        let orchestrator = try #require(orders.orchestrator)
        // The service's own task runs the participant; the orchestrator's deadline watcher is not needed here.
        let completed = try await orders.place(userID: "ada", productID: "coffee", quantity: 2)
        let refused = try await orders.place(userID: "farid", productID: "coffee", quantity: 3)
        let reserves = try await service.waitForEvents(ReserveStockCommand.self, count: 2)
        #expect(reserves.map(\.payload) == [ReserveStockCommand(orderID: completed.id, productID: "coffee", quantity: 2),
                                            ReserveStockCommand(orderID: refused.id, productID: "coffee", quantity: 3)])
        #expect(try await service.events(OrderCreated.self).isEmpty, "no choreography event")

        // Stock and balance answer as they would.
        for reserve in reserves {
            try await service.publish(EventEnvelope(StockReservation(orderID: reserve.payload.orderID, refusal: nil),
                                                    correlationID: reserve.metadata.correlationID, causationID: reserve.metadata.eventID, source: "stock"))
        }
        let charges = try await service.waitForEvents(ChargeCommand.self, count: 2)
        #expect(charges.map(\.payload.amount) == [24, 36])
        try await service.publish(EventEnvelope(ChargeResult(orderID: completed.id, refusal: nil), correlationID: completed.id,
                                                causationID: charges[0].metadata.eventID, source: "balance"))
        try await service.publish(EventEnvelope(ChargeResult(orderID: refused.id, refusal: "insufficient balance: farid has 30, the order costs 36"),
                                                correlationID: refused.id, causationID: charges[1].metadata.eventID, source: "balance"))
        // The paid order waits for its rider, registered later.
        let registrations = try await service.waitForEvents(RegisterDeliveryCommand.self, count: 1)
        #expect(registrations.map(\.payload) == [RegisterDeliveryCommand(orderID: completed.id, userID: "ada")])
        #expect(try await orders.order(completed.id)?.state == .pending)
        try await service.publish(EventEnvelope(DeliveryRegistration(orderID: completed.id, riderID: "rita", refusal: nil), correlationID: completed.id,
                                                causationID: registrations[0].metadata.eventID, source: "delivery"))
        // The refused charge undoes the reservation; its answer ends the order.
        let releases = try await service.waitForEvents(ReleaseStockCommand.self, count: 1)
        #expect(releases.map(\.payload) == [ReleaseStockCommand(orderID: refused.id)])
        try await service.publish(EventEnvelope(StockReleased(orderID: refused.id, quantity: 3), correlationID: refused.id,
                                                causationID: releases[0].metadata.eventID, source: "stock"))
        #expect(try await service.waitForEvents(OrderCompleted.self, count: 1).map(\.payload.orderID) == [completed.id])
        let cancelled = try await service.waitForEvents(OrderCancelled.self, count: 1)
        #expect(cancelled.map(\.payload.reason) == ["payment: insufficient balance: farid has 30, the order costs 36"])
        #expect(try await orders.order(completed.id)?.state == .completed)
        #expect(try await orders.order(refused.id)?.state == .cancelled)
        #expect(try await orchestrator.instance(refused.id)?.compensatedSteps == ["reserve-stock"])
        #expect(try await service.events(RefundCommand.self).isEmpty, "the refused charge had nothing to refund")
        try await service.stop()
    }
}

/// One sample of Prometheus's text format (0.0.4): a metric name and its labels.
struct PrometheusSample: Hashable {
    var name: String
    var labels: [String: String]

    /// Every sample of `text` with its value; throws at the first line that is neither a sample
    /// (`name{label="value",…} value`), a `# HELP` or `# TYPE` line, nor empty.
    static func parse(_ text: String) throws -> [PrometheusSample: Double] {
        let sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
        let label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/
        let comment = /^# (?:HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (?:counter|gauge|histogram|summary|untyped))$/
        var samples: [PrometheusSample: Double] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) where line.wholeMatch(of: comment) == nil {
            guard let match = line.wholeMatch(of: sample), let value = Double(match.3) else {
                throw ParseError(line: String(line))
            }
            let labelText = match.2 ?? ""
            let labels = labelText.matches(of: label)
            guard labels.map(\.output.0.count).reduce(0, +) == labelText.count else { throw ParseError(line: String(line)) }
            samples[PrometheusSample(name: String(match.1), labels: Dictionary(labels.map { (String($0.1), String($0.2)) }) { $1 })] = value
        }
        return samples
    }

    /// A line that is not Prometheus's text format.
    struct ParseError: Error, CustomStringConvertible {
        var line: String
        var description: String { "not a Prometheus text line: \(line)" }
    }
}
