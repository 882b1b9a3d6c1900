import Foundation
import ServiceKit
import SpoolTesting

/// A reproducible stream of orders over the seed: random users (of zones a rider serves),
/// products and quantities, about one order in ten with a coupon drawn from the seed's (so that
/// some are wanted by two orders or more), plus (first) a few orders chosen to run out of stock and
/// to lack balance, so that a run shows every ending; optionally every n-th order from a user no
/// rider serves (its delivery fails for good).
public struct OrderMix: Sendable {
    /// One order to place.
    public struct Request: Sendable {
        public var userID: String
        public var productID: String
        public var quantity: Int
        public var coupon: String?
    }

    public let requests: [Request]

    /// `count` orders drawn with `seed` (same seed, same orders); with `unservedEvery` n > 0 and a
    /// user no rider serves in `data`, every n-th order is that user's.
    public init(count: Int, over data: Seed, seed: UInt64, unservedEvery: Int = 0) {
        var generator = SeededGenerator(seed: seed)
        var requests: [Request] = []
        let served = data.users.filter(data.isServed)
        // An order larger than a product's whole stock, and one its user cannot pay.
        if let scarce = data.products.min(by: { $0.stock < $1.stock }), let user = served.max(by: { $0.balance < $1.balance }) {
            requests.append(Request(userID: user.id, productID: scarce.id, quantity: Swift.min(1000, scarce.stock + 1)))
        }
        if let poor = served.min(by: { $0.balance < $1.balance }), let dear = data.products.max(by: { $0.price < $1.price }) {
            requests.append(Request(userID: poor.id, productID: dear.id, quantity: poor.balance / dear.price + 1))
        }
        let unserved = unservedEvery > 0 ? data.users.first { !data.isServed($0) } : nil
        while requests.count < count {
            let user = unserved.flatMap { (requests.count + 1).isMultiple(of: unservedEvery) ? $0 : nil }
                ?? served[Int(generator.next() % UInt64(served.count))]
            let product = data.products[Int(generator.next() % UInt64(data.products.count))]
            let quantity = Int(generator.next() % 6) + 1
            let coupon = !data.coupons.isEmpty && generator.next() % 10 == 0 ? data.coupons[Int(generator.next() % UInt64(data.coupons.count))].code : nil
            requests.append(Request(userID: user.id, productID: product.id, quantity: quantity, coupon: coupon))
        }
        self.requests = Array(requests.prefix(count))
    }
}
