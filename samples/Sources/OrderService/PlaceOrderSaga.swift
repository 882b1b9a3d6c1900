import Foundation
import SagaEvents
import Spool
import SpoolSaga

/// The data of an orchestrated `place-order` saga: the order, and why it failed once a reply said so.
struct PlaceOrderSaga: Codable, Sendable {
    var orderID: String
    var userID: String
    var productID: String
    var quantity: Int
    var total: Int
    var coupon: String?
    /// The refusal that failed the saga ("stock: …", "payment: …", "delivery: …"); nil while none did.
    var failure: String?

    init(order: OrderCreated) {
        orderID = order.orderID
        userID = order.userID
        productID = order.productID
        quantity = order.quantity
        total = order.total
        coupon = order.coupon
    }

    /// Reserve the stock (undone by releasing it), charge the user (undone by a refund, in case
    /// the charge was done but its reply lost), then register a rider (undone by cancelling the
    /// delivery, in case a registration got through); the end completes or cancels the order.
    /// The delivery answers once a rider is registered or it gave up, after its own retries: its
    /// step waits as long as those may take.
    static func definition(stepTimeout: Duration) -> SagaDefinition<PlaceOrderSaga> {
        SagaDefinition(name: "place-order", steps: [
            .init("reserve-stock", timeout: stepTimeout,
                  send: { ReserveStockCommand(orderID: $0.orderID, productID: $0.productID, quantity: $0.quantity) },
                  onReply: { reply, data in verdict(reply.refusal, "stock", &data) })
                .compensated { ReleaseStockCommand(orderID: $0.orderID) },
            .init("charge", timeout: stepTimeout,
                  send: { ChargeCommand(orderID: $0.orderID, userID: $0.userID, amount: $0.total, coupon: $0.coupon) },
                  onReply: { reply, data in verdict(reply.refusal, "payment", &data) })
                .compensated { RefundCommand(orderID: $0.orderID, userID: $0.userID) },
            .init("register-delivery", timeout: stepTimeout,
                  send: { RegisterDeliveryCommand(orderID: $0.orderID, userID: $0.userID) },
                  onReply: { reply, data in verdict(reply.refusal, "delivery", &data) })
                .compensated { CancelDeliveryCommand(orderID: $0.orderID) },
        ], onEnd: { outcome, context in
            if outcome.state == .completed {
                try OrderService.complete(outcome.sagaID, context)
            } else {
                // A refusal says why; otherwise a step did not answer, or a person asked.
                try OrderService.cancel(outcome.sagaID, reason: outcome.data.failure ?? "saga: \(outcome.reason ?? "compensated")", context)
            }
        })
    }

    private static func verdict(_ refusal: String?, _ step: String, _ data: inout PlaceOrderSaga) -> StepVerdict {
        guard let refusal else { return .success }
        data.failure = "\(step): \(refusal)"
        return .failure(reason: refusal)
    }
}
