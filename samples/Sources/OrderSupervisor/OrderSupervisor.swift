import SagaEvents
import Spool
import SpoolSaga

/// The supervisor of the order saga (`--mode supervised`): its rule table, one line per failure.
///
/// | service | failure | answer |
/// |---|---|---|
/// | stock | `stock-failed` | cancel the order |
/// | balance | `payment-failed` | restore the stock, cancel the order |
/// | delivery | `delivery-failed` (no rider after its retries) | escalate; on request cancel the order (its cancellation refunds, frees the coupon, restores the stock, tells the user) |
/// | stock, balance, delivery, order, notification | their input dead-lettered | publish it again for them (3 times, from 500 ms doubling), then escalate |
///
/// A rider registration is never compensated by the supervisor, only retried (by the delivery
/// service itself); when it fails for good a person decides (`spool saga compensate ID`).
public enum OrderSupervisor {
    /// The service's name: consumer group and event source.
    public static let name = "supervisor"

    /// The rules, in the order they are tried.
    public static let rules: [SupervisorRule] = [
        .failed(StockFailed.self, from: "stock", .compensate([
            .send { report in CancelOrder(orderID: report.sagaID, reason: "stock: \(try report.payload(as: StockFailed.self).reason)") },
        ])),
        .failed(PaymentFailed.self, from: "balance", .compensate([
            .send { report in RestoreStock(orderID: report.sagaID) },
            .send { report in CancelOrder(orderID: report.sagaID, reason: "payment: \(try report.payload(as: PaymentFailed.self).reason)") },
        ])),
        .failed(DeliveryFailed.self, from: "delivery", .escalate(compensation: [
            .send { report in CancelOrder(orderID: report.sagaID, reason: "delivery: \(try report.payload(as: DeliveryFailed.self).reason)") },
        ])),
        .deadLettered(OrderCreated.self, by: "stock", retryThenEscalate),
        .deadLettered(StockDecreased.self, by: "balance", retryThenEscalate),
        .deadLettered(PaymentCompleted.self, by: "delivery", retryThenEscalate),
        .deadLettered(DeliveryScheduled.self, by: "order", retryThenEscalate),
        .deadLettered(OrderCompleted.self, by: "notification", retryThenEscalate),
        .deadLettered(OrderCancelled.self, by: "notification", retryThenEscalate),
    ]

    /// A handler that gave up gets three more tries, then a person decides.
    static let retryThenEscalate = SupervisorRule.Action.retry(attempts: 3, backoff: .milliseconds(500))

    /// The supervisor on `participant`.
    public static func make(on participant: SagaParticipant) -> Supervisor {
        Supervisor(participant: participant, flow: "order", rules: rules)
    }
}
