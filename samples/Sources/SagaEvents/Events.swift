import Spool

// The events of the order saga (see README.md, "The order saga"). Each is published to the topic
// named like its type; the correlation id of every event is the order id.
//
//   order ──order-created──▶ stock ──stock-decreased──▶ balance ──payment-completed──▶ delivery ──delivery-scheduled──▶ order ──order-completed──▶ notification
//                             └──stock-failed──▶ order    └──payment-failed──▶ stock (restores) + order    └──delivery-failed──▶ order
//   order (cancelled: stock, payment or delivery failed, or the order timed out) ──order-cancelled──▶ stock, balance, delivery (undo if done), notification

/// An order was placed (PENDING); starts the saga.
public struct OrderCreated: SpoolEvent, Equatable {
    public static let eventType = "order-created"
    public var orderID: String
    public var userID: String
    public var productID: String
    public var quantity: Int
    /// Price × quantity, in points.
    public var total: Int
    /// A coupon code the order is paid with, if any (the balance service applies it).
    public var coupon: String?

    public init(orderID: String, userID: String, productID: String, quantity: Int, total: Int, coupon: String? = nil) {
        self.orderID = orderID
        self.userID = userID
        self.productID = productID
        self.quantity = quantity
        self.total = total
        self.coupon = coupon
    }
}

/// Stock reserved the order's items.
public struct StockDecreased: SpoolEvent, Equatable {
    public static let eventType = "stock-decreased"
    public var orderID: String
    public var userID: String
    public var productID: String
    public var quantity: Int
    public var total: Int
    /// The order's coupon code, passed on to the balance service.
    public var coupon: String?

    public init(orderID: String, userID: String, productID: String, quantity: Int, total: Int, coupon: String? = nil) {
        self.orderID = orderID
        self.userID = userID
        self.productID = productID
        self.quantity = quantity
        self.total = total
        self.coupon = coupon
    }
}

/// Stock could not reserve the items (unknown product, not enough, order already cancelled).
public struct StockFailed: SpoolEvent, Equatable {
    public static let eventType = "stock-failed"
    public var orderID: String
    public var reason: String

    public init(orderID: String, reason: String) {
        self.orderID = orderID
        self.reason = reason
    }
}

/// Balance debited the user.
public struct PaymentCompleted: SpoolEvent, Equatable {
    public static let eventType = "payment-completed"
    public var orderID: String
    public var userID: String
    /// Points debited: the total less the coupon's discount.
    public var amount: Int

    public init(orderID: String, userID: String, amount: Int) {
        self.orderID = orderID
        self.userID = userID
        self.amount = amount
    }
}

/// Balance could not debit the user; stock restores what it reserved.
public struct PaymentFailed: SpoolEvent, Equatable {
    public static let eventType = "payment-failed"
    public var orderID: String
    public var reason: String

    public init(orderID: String, reason: String) {
        self.orderID = orderID
        self.reason = reason
    }
}

/// Stock put back what an order had reserved (a compensation).
public struct StockRestored: SpoolEvent, Equatable {
    public static let eventType = "stock-restored"
    public var orderID: String
    public var productID: String
    public var quantity: Int

    public init(orderID: String, productID: String, quantity: Int) {
        self.orderID = orderID
        self.productID = productID
        self.quantity = quantity
    }
}

/// Balance gave back what a cancelled order had debited (a compensation).
public struct PaymentRefunded: SpoolEvent, Equatable {
    public static let eventType = "payment-refunded"
    public var orderID: String
    public var userID: String
    public var amount: Int

    public init(orderID: String, userID: String, amount: Int) {
        self.orderID = orderID
        self.userID = userID
        self.amount = amount
    }
}

/// The order is COMPLETED.
public struct OrderCompleted: SpoolEvent, Equatable {
    public static let eventType = "order-completed"
    public var orderID: String
    public var userID: String
    public var total: Int

    public init(orderID: String, userID: String, total: Int) {
        self.orderID = orderID
        self.userID = userID
        self.total = total
    }
}

/// The order is CANCELLED, with the reason.
public struct OrderCancelled: SpoolEvent, Equatable {
    public static let eventType = "order-cancelled"
    public var orderID: String
    public var userID: String
    public var reason: String

    public init(orderID: String, userID: String, reason: String) {
        self.orderID = orderID
        self.userID = userID
        self.reason = reason
    }
}

/// A rider is registered for a paid order: the delivery is scheduled (the order completes).
public struct DeliveryScheduled: SpoolEvent, Equatable {
    public static let eventType = "delivery-scheduled"
    public var orderID: String
    public var userID: String
    /// The rider the dispatch registered.
    public var riderID: String

    public init(orderID: String, userID: String, riderID: String) {
        self.orderID = orderID
        self.userID = userID
        self.riderID = riderID
    }
}

/// The delivery service gave up registering a rider for a paid order (after its retries).
public struct DeliveryFailed: SpoolEvent, Equatable {
    public static let eventType = "delivery-failed"
    public var orderID: String
    public var reason: String

    public init(orderID: String, reason: String) {
        self.orderID = orderID
        self.reason = reason
    }
}

/// A cancelled order's delivery was cancelled and its rider matching withdrawn (a compensation).
public struct DeliveryCancelled: SpoolEvent, Equatable {
    public static let eventType = "delivery-cancelled"
    public var orderID: String

    public init(orderID: String) { self.orderID = orderID }
}

/// The order service's own timeout (choreography): no outcome of the payment and the delivery in time.
public struct OrderTimedOut: SpoolEvent, Equatable {
    public static let eventType = "order-timed-out"
    public var orderID: String

    public init(orderID: String) { self.orderID = orderID }
}

// Orchestration (`--mode orchestration`): the order service's orchestrator sends commands to
// `stock.commands` and `balance.commands`, one step at a time, and the replies come back on
// `order.replies`; on a refusal or a step that never answers it sends the undo commands of the
// steps done, newest first. The order service then emits `order-completed` or `order-cancelled`
// as in the choreography, for the notification service.
//
//   order ──reserve-stock──▶ stock ──stock-reservation──▶ order ──charge──▶ balance ──charge-result──▶ order
//         ──register-delivery──▶ delivery ──delivery-registration (once a rider is registered, or given up)──▶ order
//   undo:  release-stock ──▶ stock ──stock-released──▶ order;   refund ──▶ balance ──refund-result──▶ order;
//          cancel-delivery ──▶ delivery ──delivery-cancellation──▶ order

/// Reserve an order's items.
public struct ReserveStockCommand: SagaCommand, Equatable {
    public typealias Reply = StockReservation
    public static let eventType = "reserve-stock"
    public static let topic = "stock.commands"
    public var orderID: String
    public var productID: String
    public var quantity: Int

    public init(orderID: String, productID: String, quantity: Int) {
        self.orderID = orderID
        self.productID = productID
        self.quantity = quantity
    }
}

/// Stock's answer to ``ReserveStockCommand``: reserved, or refused with the reason.
public struct StockReservation: SpoolEvent, Equatable {
    public static let eventType = "stock-reservation"
    public static let topic = "order.replies"
    public var orderID: String
    /// Why nothing was reserved; nil when the items are reserved.
    public var refusal: String?

    public init(orderID: String, refusal: String?) {
        self.orderID = orderID
        self.refusal = refusal
    }
}

/// Put back what an order reserved (or make sure it is never reserved, if the reservation has not arrived yet).
public struct ReleaseStockCommand: SagaCommand, Equatable {
    public typealias Reply = StockReleased
    public static let eventType = "release-stock"
    public static let topic = "stock.commands"
    public var orderID: String

    public init(orderID: String) { self.orderID = orderID }
}

/// Stock's answer to ``ReleaseStockCommand``.
public struct StockReleased: SpoolEvent, Equatable {
    public static let eventType = "stock-released"
    public static let topic = "order.replies"
    public var orderID: String
    /// Units put back (0 when nothing was reserved).
    public var quantity: Int

    public init(orderID: String, quantity: Int) {
        self.orderID = orderID
        self.quantity = quantity
    }
}

/// Debit an order's total (less its coupon's discount) from its user.
public struct ChargeCommand: SagaCommand, Equatable {
    public typealias Reply = ChargeResult
    public static let eventType = "charge"
    public static let topic = "balance.commands"
    public var orderID: String
    public var userID: String
    public var amount: Int
    /// The order's coupon code, if any.
    public var coupon: String?

    public init(orderID: String, userID: String, amount: Int, coupon: String? = nil) {
        self.orderID = orderID
        self.userID = userID
        self.amount = amount
        self.coupon = coupon
    }
}

/// Balance's answer to ``ChargeCommand``: debited, or refused with the reason.
public struct ChargeResult: SpoolEvent, Equatable {
    public static let eventType = "charge-result"
    public static let topic = "order.replies"
    public var orderID: String
    /// Why nothing was debited; nil when the user was debited.
    public var refusal: String?

    public init(orderID: String, refusal: String?) {
        self.orderID = orderID
        self.refusal = refusal
    }
}

/// Give back what an order debited and release its coupon (or make sure it is never debited, if
/// the charge has not arrived yet).
public struct RefundCommand: SagaCommand, Equatable {
    public typealias Reply = RefundResult
    public static let eventType = "refund"
    public static let topic = "balance.commands"
    public var orderID: String
    public var userID: String

    public init(orderID: String, userID: String) {
        self.orderID = orderID
        self.userID = userID
    }
}

/// Balance's answer to ``RefundCommand``.
public struct RefundResult: SpoolEvent, Equatable {
    public static let eventType = "refund-result"
    public static let topic = "order.replies"
    public var orderID: String
    /// Points given back (0 when nothing was debited).
    public var amount: Int

    public init(orderID: String, amount: Int) {
        self.orderID = orderID
        self.amount = amount
    }
}

/// Register a rider for a paid order. Answered once the dispatch registered one, or once the
/// delivery service gave up (a refusal): not in the transaction that accepts it.
public struct RegisterDeliveryCommand: SagaCommand, Equatable {
    public typealias Reply = DeliveryRegistration
    public static let eventType = "register-delivery"
    public static let topic = "delivery.commands"
    public var orderID: String
    public var userID: String

    public init(orderID: String, userID: String) {
        self.orderID = orderID
        self.userID = userID
    }
}

/// Delivery's answer to ``RegisterDeliveryCommand``: the rider, or why there is none.
public struct DeliveryRegistration: SpoolEvent, Equatable {
    public static let eventType = "delivery-registration"
    public static let topic = "order.replies"
    public var orderID: String
    /// The registered rider; nil when refused.
    public var riderID: String?
    /// Why no rider is registered; nil when one is.
    public var refusal: String?

    public init(orderID: String, riderID: String?, refusal: String?) {
        self.orderID = orderID
        self.riderID = riderID
        self.refusal = refusal
    }
}

/// Cancel an order's delivery and withdraw its rider matching (or make sure it is never
/// registered, if the registration has not arrived yet).
public struct CancelDeliveryCommand: SagaCommand, Equatable {
    public typealias Reply = DeliveryCancellation
    public static let eventType = "cancel-delivery"
    public static let topic = "delivery.commands"
    public var orderID: String

    public init(orderID: String) { self.orderID = orderID }
}

/// Delivery's answer to ``CancelDeliveryCommand``.
public struct DeliveryCancellation: SpoolEvent, Equatable {
    public static let eventType = "delivery-cancellation"
    public static let topic = "order.replies"
    public var orderID: String

    public init(orderID: String) { self.orderID = orderID }
}

// Supervision (`--mode supervised`): the choreography's forward steps, but no service reacts to
// another's failure; the supervisor answers each failure report with the rule declared for it,
// sending these commands (and publishing dead-lettered events again for the service that failed).

/// The supervisor's command to end an order CANCELLED with the reason.
public struct CancelOrder: SpoolEvent, Equatable {
    public static let eventType = "cancel-order"
    public var orderID: String
    public var reason: String

    public init(orderID: String, reason: String) {
        self.orderID = orderID
        self.reason = reason
    }
}

/// The supervisor's command to put back what an order reserved.
public struct RestoreStock: SpoolEvent, Equatable {
    public static let eventType = "restore-stock"
    public var orderID: String

    public init(orderID: String) { self.orderID = orderID }
}
