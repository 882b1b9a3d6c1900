import OrderSupervisor
import SagaEvents
import Spool
import SpoolSaga
import SpoolTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct OrderSupervisorTests {
    private final class Box: @unchecked Sendable { var supervisor: Supervisor? }

    @Test func failedStepsGetTheirDeclaredCommandsAndAFailureNoRuleNamesIsParked() async throws {
        let box = Box()
        let service = try await ServiceUnderTest(OrderSupervisor.name, prepare: { _, _ in }) { participant, _ in
            box.supervisor = OrderSupervisor.make(on: participant)
        }
        let supervisor = try #require(box.supervisor)
        try await service.publish(PaymentFailed(orderID: "o1", reason: "insufficient balance: bob has 30, the order costs 36"), saga: "o1",
                                  source: "balance")
        try await service.publish(StockFailed(orderID: "o2", reason: "out of stock: 0 dates left, 1 wanted"), saga: "o2", source: "stock")
        try await service.publish(StockFailed(orderID: "o3", reason: "forged"), saga: "o3", source: "somebody-else")
        try await service.publish(DeliveryFailed(orderID: "o4", reason: "no rider registered after 6 attempts: no rider serves zone harbour"),
                                  saga: "o4", source: "delivery")

        let cancels = try await service.waitForEvents(CancelOrder.self, count: 2)
        #expect(cancels.map(\.payload) == [CancelOrder(orderID: "o1", reason: "payment: insufficient balance: bob has 30, the order costs 36"),
                                           CancelOrder(orderID: "o2", reason: "stock: out of stock: 0 dates left, 1 wanted")])
        #expect(try await service.waitForEvents(RestoreStock.self, count: 1).map(\.payload) == [RestoreStock(orderID: "o1")])
        #expect(cancels.allSatisfy { $0.metadata.source == "supervisor" })
        #expect(await eventually { (try? await supervisor.saga("o3"))?.state == .parked })
        #expect(try await supervisor.saga("o3")?.reason == "stock-failed from somebody-else: no rule answers it")
        #expect(try await supervisor.saga("o1")?.compensatedSteps == ["restore-stock", "cancel-order"])
        // A delivery that failed for good waits for a person; asked, the supervisor cancels the order.
        #expect(await eventually { (try? await supervisor.saga("o4"))?.state == .parked })
        #expect(try await service.events(CancelOrder.self).count == 2, "nothing is sent for o4 before a person decides")
        let request = try EventEnvelope(SagaControl(sagaID: "o4", action: .compensate, requestedBy: "ops"), correlationID: "o4", source: "test").record()
        try await service.client.publish(to: SagaControl.topic, key: request.key, value: request.value, headers: request.headers)
        let all = try await service.waitForEvents(CancelOrder.self, count: 3)
        #expect(all.last?.payload == CancelOrder(orderID: "o4", reason: "delivery: no rider registered after 6 attempts: no rider serves zone harbour"))
        #expect(await eventually { (try? await supervisor.saga("o4"))?.state == .compensated })
        try await service.stop()
    }
}
