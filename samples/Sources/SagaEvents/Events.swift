import Spool

// The events of the order saga (see README.md, "The order saga"). Each is published to the topic
// named like its type; the correlation id of every event is the order id.
//
//   order  ──order-created──▶ stock ──stock-decreased──▶ balance ──payment-completed──▶ order ──order-completed──▶ notification
//                              └──stock-failed──▶ order      └──payment-failed──▶ stock (restores) + order
//   order (cancelled: stock/payment failed, or payment timed out) ──order-cancelled──▶ stock, balance (undo if done), notification

/// An order was placed (PENDING); starts the saga.
public struct OrderCreated: SpoolEvent, Equatable {
    public static let eventType = "order-created"
    public var orderID: String
    public var userID: String
    public var productID: String
    public var quantity: Int
    /// Price × quantity, in points.
    public var total: Int

    public init(orderID: String, userID: String, productID: String, quantity: Int, total: Int) {
        self.orderID = orderID
        self.userID = userID
        self.productID = productID
        self.quantity = quantity
        self.total = total
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

    public init(orderID: String, userID: String, productID: String, quantity: Int, total: Int) {
        self.orderID = orderID
        self.userID = userID
        self.productID = productID
        self.quantity = quantity
        self.total = total
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

/// The order service's own timeout: no payment outcome in time.
public struct PaymentTimedOut: SpoolEvent, Equatable {
    public static let eventType = "payment-timed-out"
    public var orderID: String

    public init(orderID: String) { self.orderID = orderID }
}
