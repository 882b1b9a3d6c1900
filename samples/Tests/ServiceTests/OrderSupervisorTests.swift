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

        let cancels = try await service.waitForEvents(CancelOrder.self, count: 2)
        #expect(cancels.map(\.payload) == [CancelOrder(orderID: "o1", reason: "payment: insufficient balance: bob has 30, the order costs 36"),
                                           CancelOrder(orderID: "o2", reason: "stock: out of stock: 0 dates left, 1 wanted")])
        #expect(try await service.waitForEvents(RestoreStock.self, count: 1).map(\.payload) == [RestoreStock(orderID: "o1")])
        #expect(cancels.allSatisfy { $0.metadata.source == "supervisor" })
        #expect(await eventually { (try? await supervisor.saga("o3"))?.state == .parked })
        #expect(try await supervisor.saga("o3")?.reason == "stock-failed from somebody-else: no rule answers it")
        #expect(try await supervisor.saga("o1")?.compensatedSteps == ["restore-stock", "cancel-order"])
        try await service.stop()
    }
}
