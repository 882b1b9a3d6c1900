import BalanceService
import GRDB
import SagaEvents
import Spool
import Testing

@Suite(.timeLimit(.minutes(1))) struct BalanceServiceTests {
    private func start() async throws -> ServiceUnderTest {
        try await ServiceUnderTest(BalanceService.name, prepare: BalanceService.prepare) { participant, _ in BalanceService.register(on: participant) }
    }

    private func balance(_ service: ServiceUnderTest, _ user: String) async throws -> Int? {
        try await service.database.read { db in try BalanceService.balances(db)[user] }
    }

    @Test func debitsWhoCanPayAndRefusesWhoCannot() async throws {
        let service = try await start()
        try await service.publish(StockDecreased(orderID: "o1", userID: "bob", productID: "coffee", quantity: 10, total: 120), saga: "o1")
        try await service.publish(StockDecreased(orderID: "o2", userID: "bob", productID: "coffee", quantity: 3, total: 36), saga: "o2")
        try await service.publish(StockDecreased(orderID: "o3", userID: "zed", productID: "apple", quantity: 1, total: 3), saga: "o3")
        let completed = try await service.waitForEvents(PaymentCompleted.self, count: 1)
        let failed = try await service.waitForEvents(PaymentFailed.self, count: 2)
        #expect(completed.map(\.payload) == [PaymentCompleted(orderID: "o1", userID: "bob", amount: 120)])
        #expect(failed.map(\.payload.reason) == ["insufficient balance: bob has 30, the order costs 36", "unknown user zed"])
        #expect(try await balance(service, "bob") == 30)
        try await service.stop()
    }

    @Test func aCancelledOrderIsRefundedOnceAndALateOneIsRefused() async throws {
        let service = try await start()
        try await service.publish(StockDecreased(orderID: "o1", userID: "ada", productID: "eggs", quantity: 5, total: 20), saga: "o1")
        _ = try await service.waitForEvents(PaymentCompleted.self, count: 1)
        let cancelled = EventEnvelope(OrderCancelled(orderID: "o1", userID: "ada", reason: "timeout"), correlationID: "o1", source: "order")
        try await service.publish(cancelled)
        try await service.publish(cancelled)
        // Cancelled before its stock-decreased arrives: the payment is refused, nothing is debited.
        try await service.publish(OrderCancelled(orderID: "o2", userID: "ada", reason: "timeout"), saga: "o2")
        #expect(await service.waitUntilHandled(4))
        try await service.publish(StockDecreased(orderID: "o2", userID: "ada", productID: "eggs", quantity: 1, total: 4), saga: "o2")
        let failed = try await service.waitForEvents(PaymentFailed.self, count: 1)
        #expect(failed.map(\.payload.reason) == ["order already cancelled"])
        let refunds = try await service.events(PaymentRefunded.self)
        #expect(refunds.map(\.event.payload) == [PaymentRefunded(orderID: "o1", userID: "ada", amount: 20)])
        #expect(refunds.first?.record.headers.text(of: EventHeaderName.role) == "compensation")
        #expect(try await balance(service, "ada") == 400)
        try await service.stop()
    }

    @Test func inTheOrchestrationCommandsChargeAndRefundOnceAndARefundThatOvertakesItsChargeWins() async throws {
        let service = try await ServiceUnderTest(BalanceService.name, prepare: BalanceService.prepare) { participant, _ in
            BalanceService.register(on: participant, mode: .orchestration)
        }
        try await service.publish(ChargeCommand(orderID: "o1", userID: "bob", amount: 120), saga: "o1")
        try await service.publish(ChargeCommand(orderID: "o2", userID: "bob", amount: 36), saga: "o2")
        try await service.publish(RefundCommand(orderID: "o3", userID: "ada"), saga: "o3")
        try await service.publish(ChargeCommand(orderID: "o3", userID: "ada", amount: 4), saga: "o3")
        let charges = try await service.waitForEvents(ChargeResult.self, count: 3)
        #expect(charges.map(\.payload) == [ChargeResult(orderID: "o1", refusal: nil),
                                           ChargeResult(orderID: "o2", refusal: "insufficient balance: bob has 30, the order costs 36"),
                                           ChargeResult(orderID: "o3", refusal: "order already cancelled")])
        try await service.publish(RefundCommand(orderID: "o1", userID: "bob"), saga: "o1")
        let refunds = try await service.waitForEvents(RefundResult.self, count: 2)
        #expect(refunds.map(\.payload) == [RefundResult(orderID: "o3", amount: 0), RefundResult(orderID: "o1", amount: 120)])
        #expect(try await balance(service, "bob") == 150)
        #expect(try await balance(service, "ada") == 400)
        try await service.stop()
    }

    @Test func aCouponIsUsedByOneOrderAtMostAndIsFreeAgainAfterARefund() async throws {
        let service = try await start()
        try await service.publish(StockDecreased(orderID: "o1", userID: "bob", productID: "coffee", quantity: 3, total: 36, coupon: "VIP20"), saga: "o1")
        try await service.publish(StockDecreased(orderID: "o2", userID: "ada", productID: "coffee", quantity: 1, total: 12, coupon: "VIP20"), saga: "o2")
        try await service.publish(StockDecreased(orderID: "o3", userID: "ada", productID: "coffee", quantity: 1, total: 12, coupon: "NOPE"), saga: "o3")
        try await service.publish(StockDecreased(orderID: "o4", userID: "ada", productID: "apple", quantity: 1, total: 3, coupon: "LUCKY10"), saga: "o4")
        let completed = try await service.waitForEvents(PaymentCompleted.self, count: 2)
        #expect(completed.map(\.payload) == [PaymentCompleted(orderID: "o1", userID: "bob", amount: 16),
                                             PaymentCompleted(orderID: "o4", userID: "ada", amount: 0)], "the discount, never below 0")
        let failed = try await service.waitForEvents(PaymentFailed.self, count: 2)
        #expect(failed.map(\.payload.reason) == ["coupon VIP20 already used", "unknown coupon NOPE"])
        #expect(try await balance(service, "ada") == 400, "a refused order debits nothing")

        // o1 is cancelled: refunded, and its coupon is free for another order.
        try await service.publish(OrderCancelled(orderID: "o1", userID: "bob", reason: "timeout"), saga: "o1")
        #expect(try await service.waitForEvents(PaymentRefunded.self, count: 1).map(\.payload.amount) == [16])
        try await service.publish(StockDecreased(orderID: "o5", userID: "ada", productID: "coffee", quantity: 2, total: 24, coupon: "VIP20"), saga: "o5")
        #expect(try await service.waitForEvents(PaymentCompleted.self, count: 3).last?.payload.amount == 4)
        #expect(try await balance(service, "bob") == 150)
        #expect(try await balance(service, "ada") == 396)
        let uses = try await service.database.read { db in try String.fetchAll(db, sql: "SELECT order_id FROM coupon_uses WHERE code = 'VIP20'") }
        #expect(uses == ["o5"])
        try await service.stop()
    }
}
