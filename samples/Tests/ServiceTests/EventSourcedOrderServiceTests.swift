import Foundation
import GRDB
import Logging
import OrderService
import SagaEvents
import SagaHarness
import Spool
import SpoolEventSourcing
import SpoolTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct EventSourcedOrderServiceTests {
    private final class Box: @unchecked Sendable { var orders: EventSourcedOrderService? }

    private func start(orderTimeout: Duration = .seconds(30)) async throws -> (ServiceUnderTest, EventSourcedOrderService) {
        let box = Box()
        let service = try await ServiceUnderTest(OrderService.name, prepare: OrderService.prepare, register: { participant, seed in
            box.orders = try EventSourcedOrderService(participant: participant, seed: seed, orderTimeout: orderTimeout, readTimeout: .milliseconds(500))
        }, run: { _ in try await box.orders!.run() })
        return (service, box.orders!)
    }

    /// The aggregate events of order `id`, oldest first.
    private func history(_ id: String, _ service: ServiceUnderTest) async throws -> [OrderAggregate.Event] {
        try await service.client.records(ofKey: Array(id.utf8), in: OrderAggregate.topic).records.map {
            try JSONDecoder().decode(OrderAggregate.Event.self, from: Data($0.value))
        }
    }

    /// The rows of `orders_view`, by id.
    private func view(_ service: ServiceUnderTest) throws -> [Row] {
        try service.database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM orders_view ORDER BY id") }
    }

    @Test func aSagaRunsThroughTheAggregateAndDuplicatesGiveOneEvent() async throws {
        let (service, orders) = try await start()
        let order = try await orders.place(userID: "ada", productID: "coffee", quantity: 2)
        #expect(order.state == .pending && order.total == 24 && order.version != nil)

        // The relay derives order-created from the placed event: its id is the event's place.
        let created = try await service.waitForEvents(OrderCreated.self, count: 1)
        #expect(created.map(\.payload) == [OrderCreated(orderID: order.id, userID: "ada", productID: "coffee", quantity: 2, total: 24)])
        #expect(created.first?.metadata.eventID == "order-events/0@\(order.version!)")
        #expect(created.first?.metadata.correlationID == order.id)

        // Each step reported twice: redelivered (the same event) and sent again (a new event id).
        let reserved = EventEnvelope(StockDecreased(orderID: order.id, userID: "ada", productID: "coffee", quantity: 2, total: 24),
                                     correlationID: order.id, source: "stock")
        try await service.publish(reserved)
        try await service.publish(reserved)
        for _ in 0..<2 { try await service.publish(PaymentCompleted(orderID: order.id, userID: "ada", amount: 24), saga: order.id, source: "balance") }
        #expect(await eventually { (try? await self.history(order.id, service).count) == 3 })
        try await service.publish(DeliveryScheduled(orderID: order.id, userID: "ada", riderID: "rita"), saga: order.id, source: "delivery")
        try await service.publish(DeliveryScheduled(orderID: order.id, userID: "ada", riderID: "rita"), saga: order.id, source: "delivery")
        let completed = try await service.waitForEvents(OrderCompleted.self, count: 1)
        #expect(completed.map(\.payload) == [OrderCompleted(orderID: order.id, userID: "ada", total: 24)])
        // A late failure changes nothing: the order has ended.
        try await service.publish(DeliveryFailed(orderID: order.id, reason: "late"), saga: order.id)
        let other = try await orders.place(userID: "bob", productID: "apple", quantity: 1)
        try await service.publish(DeliveryFailed(orderID: other.id, reason: "no rider"), saga: other.id)
        _ = try await service.waitForEvents(OrderCancelled.self, count: 1)

        let created0 = try #require(created.first?.payload)
        #expect(try await history(order.id, service) == [
            .placed(created0, at: try #require(EventMetadata.parseTime(order.createdAt))), .stockReserved, .paid(amount: 24),
            .deliveryScheduled(riderID: "rita"),
        ])
        let state = try await orders.repository.load(order.id)
        #expect(state.state.state == .completed && state.state.riderID == "rita")
        #expect(try await service.events(OrderCancelled.self).map(\.event.payload.orderID) == [other.id])
        #expect(try await service.events(OrderCompleted.self).count == 1)
        // The read model follows; the order timeouts were cancelled with the ends.
        #expect(try await orders.order(order.id, minVersion: state.version)?.state == .completed)
        #expect(try await service.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_timeouts") } == 0)
        try await service.stop()
    }

    @Test func failuresAndTheTimeoutCancelWithTheirReasons() async throws {
        let (service, orders) = try await start(orderTimeout: .milliseconds(300))
        let unstocked = try await orders.place(userID: "bob", productID: "dates", quantity: 3)
        try await service.publish(StockFailed(orderID: unstocked.id, reason: "out of stock: 2 dates left, 3 wanted"), saga: unstocked.id)
        let forgotten = try await orders.place(userID: "eve", productID: "apple", quantity: 1)
        let cancelled = try await service.waitForEvents(OrderCancelled.self, count: 2)
        let reasons = Dictionary(uniqueKeysWithValues: cancelled.map { ($0.payload.orderID, $0.payload.reason) })
        #expect(reasons[unstocked.id] == "stock: out of stock: 2 dates left, 3 wanted")
        #expect(reasons[forgotten.id]?.hasPrefix("timeout: no payment and delivery within") == true)
        let records = try await service.events(OrderCancelled.self).map(\.record)
        #expect(records.allSatisfy { $0.headers.text(of: EventHeaderName.role) == "failure" })
        let view = try await orders.order(forgotten.id, minVersion: forgotten.version! + 1)
        #expect(view?.state == .cancelled && view?.reason?.hasPrefix("timeout: ") == true)
        try await service.stop()
    }

    @Test func theHTTPAPIAnswersTheVersionWrittenAndReadsItsOwnWrite() async throws {
        let (service, orders) = try await start()
        let port = try freeLoopbackPort()
        let server = Task { try await orders.application(port: port, logger: Logger(label: "test")).run() }
        let client = OrderClient(baseURL: URL(string: "http://127.0.0.1:\(port)")!)
        try await client.waitUntilUp()
        for _ in 0..<5 {
            let placed = try await client.place(userID: "ada", productID: "apple", quantity: 1)
            let version = try #require(placed.version)
            let read = try await client.order(placed.id, minVersion: version)
            #expect(read?.state == "PENDING" && read?.version == version)
        }
        // A version the order never reaches: 504 after the read timeout, saying what the view holds.
        let placed = try await client.place(userID: "ada", productID: "apple", quantity: 1)
        var answer = "no error"
        do {
            _ = try await client.order(placed.id, minVersion: placed.version! + 1000)
        } catch {
            answer = "\(error)"
        }
        #expect(answer.contains("HTTP 504") && answer.contains("at version \(placed.version!)"), "\(answer)")
        #expect(try await client.orders(state: "PENDING").count == 6)
        server.cancel()
        try await service.stop()
    }

    @Test func aRebuiltProjectionEqualsTheLiveOneAndARelayReplayRepublishesTheSameIDs() async throws {
        let (service, orders) = try await start()
        var placed: [Order] = []
        for (user, product) in [("ada", "apple"), ("bob", "coffee"), ("cy", "dates"), ("dan", "apple")] {
            placed.append(try await orders.place(userID: user, productID: product, quantity: 1))
        }
        try await service.publish(StockFailed(orderID: placed[0].id, reason: "none left"), saga: placed[0].id)
        try await service.publish(PaymentCompleted(orderID: placed[1].id, userID: "bob", amount: 12), saga: placed[1].id)
        try await service.publish(DeliveryScheduled(orderID: placed[1].id, userID: "bob", riderID: "rita"), saga: placed[1].id)
        _ = try await service.waitForEvents(OrderCompleted.self, count: 1)
        _ = try await service.waitForEvents(OrderCancelled.self, count: 1)
        let end = try await service.client.offset(of: OrderAggregate.topic, .latest)
        #expect(await eventually { (try? orders.projection.hasApplied(offset: end - 1)) == true })
        let live = try view(service)
        #expect(live.count == 4)

        // Rebuilt from offset 0; and the relay forgets its position (a crash before storing it).
        try await service.restart {
            try orders.rebuildProjection()
            try service.database.write { db in try db.execute(sql: "DELETE FROM order_relay_positions") }
        }
        #expect(await eventually { (try? orders.projection.hasApplied(offset: end - 1)) == true })
        #expect(try view(service) == live)

        // The relay published every saga event again, with the same ids and bytes.
        let created = try await service.waitForEvents(OrderCreated.self, count: 8)
        #expect(Dictionary(grouping: created, by: \.metadata.eventID).values.allSatisfy { $0.count == 2 })
        let records = try await service.events(OrderCreated.self).map(\.record)
        #expect(Dictionary(grouping: records, by: { $0.headers.text(of: EventHeaderName.eventID) ?? "" }).values.allSatisfy { copies in
            copies.count == 2 && copies[0].value == copies[1].value && copies[0].headers == copies[1].headers
        })
        try await service.stop()
    }
}
