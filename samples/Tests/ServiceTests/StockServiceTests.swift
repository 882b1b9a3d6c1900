import GRDB
import SagaEvents
import Spool
import StockService
import Testing

@Suite(.timeLimit(.minutes(1))) struct StockServiceTests {
    private func start() async throws -> ServiceUnderTest {
        try await ServiceUnderTest(StockService.name, prepare: StockService.prepare) { participant, _ in StockService.register(on: participant) }
    }

    private func stock(_ service: ServiceUnderTest, _ product: String) async throws -> Int? {
        try await service.database.read { db in try StockService.stock(db)[product] }
    }

    @Test func reservesWhatIsThereAndRefusesWhatIsNot() async throws {
        let service = try await start()
        try await service.publish(OrderCreated(orderID: "o1", userID: "ada", productID: "dates", quantity: 10, total: 80), saga: "o1")
        try await service.publish(OrderCreated(orderID: "o2", userID: "bob", productID: "dates", quantity: 6, total: 48), saga: "o2")
        try await service.publish(OrderCreated(orderID: "o3", userID: "bob", productID: "caviar", quantity: 1, total: 1), saga: "o3")
        let decreased = try await service.waitForEvents(StockDecreased.self, count: 1)
        let failed = try await service.waitForEvents(StockFailed.self, count: 2)
        #expect(decreased.map(\.payload) == [StockDecreased(orderID: "o1", userID: "ada", productID: "dates", quantity: 10, total: 80)])
        #expect(decreased.first?.metadata.correlationID == "o1" && decreased.first?.metadata.source == "stock")
        #expect(failed.map(\.payload.reason) == ["out of stock: 5 dates left, 6 wanted", "unknown product caviar"])
        #expect(try await service.events(StockFailed.self).allSatisfy { $0.record.headers.text(of: EventHeaderName.role) == "failure" })
        #expect(try await stock(service, "dates") == 5)
        try await service.stop()
    }

    @Test func aRedeliveredOrderIsReservedOnce() async throws {
        let service = try await start()
        let created = EventEnvelope(OrderCreated(orderID: "o1", userID: "ada", productID: "apple", quantity: 7, total: 21), correlationID: "o1", source: "order")
        try await service.publish(created)
        try await service.publish(created)
        #expect(await service.waitUntilHandled(2))
        #expect(service.participant.statistics.duplicates == 1)
        #expect(try await stock(service, "apple") == 113)
        #expect(try await service.waitForEvents(StockDecreased.self, count: 1).count == 1)
        try await service.stop()
    }

    @Test func aFailedPaymentRestoresTheStockOnce() async throws {
        let service = try await start()
        try await service.publish(OrderCreated(orderID: "o1", userID: "dana", productID: "coffee", quantity: 4, total: 48), saga: "o1")
        _ = try await service.waitForEvents(StockDecreased.self, count: 1)
        #expect(try await stock(service, "coffee") == 36)
        try await service.publish(PaymentFailed(orderID: "o1", reason: "insufficient balance"), saga: "o1")
        try await service.publish(OrderCancelled(orderID: "o1", userID: "dana", reason: "payment: insufficient balance"), saga: "o1")
        #expect(await service.waitUntilHandled(3))
        _ = try await service.waitForEvents(StockRestored.self, count: 1)
        let restored = try await service.events(StockRestored.self)
        #expect(restored.map(\.event.payload) == [StockRestored(orderID: "o1", productID: "coffee", quantity: 4)])
        #expect(restored.first?.record.headers.text(of: EventHeaderName.role) == "compensation")
        #expect(try await stock(service, "coffee") == 40)
        try await service.stop()
    }

    @Test func aCancellationThatOvertakesTheOrderMakesStockRefuseIt() async throws {
        let service = try await start()
        try await service.publish(OrderCancelled(orderID: "o9", userID: "eve", reason: "timeout"), saga: "o9")
        #expect(await service.waitUntilHandled(1))
        try await service.publish(OrderCreated(orderID: "o9", userID: "eve", productID: "bread", quantity: 2, total: 10), saga: "o9")
        let failed = try await service.waitForEvents(StockFailed.self, count: 1)
        #expect(failed.map(\.payload.reason) == ["order already cancelled"])
        #expect(try await stock(service, "bread") == 60)
        #expect(try await service.events(StockRestored.self).isEmpty)
        try await service.stop()
    }

    @Test func inTheOrchestrationCommandsReserveAndReleaseOnceAndAReleaseThatOvertakesItsReserveWins() async throws {
        let service = try await ServiceUnderTest(StockService.name, prepare: StockService.prepare) { participant, _ in
            StockService.register(on: participant, mode: .orchestration)
        }
        try await service.publish(ReserveStockCommand(orderID: "o1", productID: "dates", quantity: 10), saga: "o1")
        try await service.publish(ReserveStockCommand(orderID: "o2", productID: "dates", quantity: 6), saga: "o2")
        // The undo arrives before the command it undoes (sent, unanswered in time, undone).
        try await service.publish(ReleaseStockCommand(orderID: "o3"), saga: "o3")
        try await service.publish(ReserveStockCommand(orderID: "o3", productID: "apple", quantity: 1), saga: "o3")
        let reservations = try await service.waitForEvents(StockReservation.self, count: 3)
        #expect(reservations.map(\.payload) == [StockReservation(orderID: "o1", refusal: nil),
                                                StockReservation(orderID: "o2", refusal: "out of stock: 5 dates left, 6 wanted"),
                                                StockReservation(orderID: "o3", refusal: "order already cancelled")])
        let release = EventEnvelope(ReleaseStockCommand(orderID: "o1"), correlationID: "o1", source: "order")
        try await service.publish(release)
        try await service.publish(release)  // sent again after a timeout: the same reply, nothing put back twice
        let released = try await service.waitForEvents(StockReleased.self, count: 3)
        #expect(released.map(\.payload) == [StockReleased(orderID: "o3", quantity: 0), StockReleased(orderID: "o1", quantity: 10),
                                            StockReleased(orderID: "o1", quantity: 10)])
        #expect(released[1].metadata.eventID == released[2].metadata.eventID)
        #expect(try await stock(service, "dates") == 15)
        #expect(try await stock(service, "apple") == 120)
        try await service.stop()
    }
}
