import Foundation

/// The starting data of the saga: products with prices and stock, users with balances and the
/// zone they live in, coupons with their discounts, riders with the zones they serve. Each service
/// loads its part into its empty database at first start; the invariants compare with it.
public struct Seed: Codable, Sendable, Equatable {
    /// A product for sale.
    public struct Product: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        /// Price of one unit, in points.
        public var price: Int
        /// Units in stock at the start.
        public var stock: Int
    }

    /// A customer.
    public struct User: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        /// Points at the start.
        public var balance: Int
        /// Where orders are delivered to (``Seed/defaultZone`` when the seed does not say).
        public var zone: String?

        /// The zone deliveries go to.
        public var deliveryZone: String { zone ?? Seed.defaultZone }
    }

    /// A rider the delivery's dispatch can register for an order.
    public struct Rider: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        /// The zones the rider delivers to.
        public var zones: [String]
    }

    /// The zone of a user whose seed entry names none.
    public static let defaultZone = "centre"

    /// A discount code, good for one order in all (whoever uses it first).
    public struct Coupon: Codable, Sendable, Equatable {
        public var code: String
        /// Points off the order's total (never below 0).
        public var discount: Int
    }

    public var products: [Product]
    public var users: [User]
    /// The coupons (none in a seed file that has no `coupons`).
    public var coupons: [Coupon]
    /// The riders (none in a seed file that has no `riders`).
    public var riders: [Rider]

    public init(products: [Product], users: [User], coupons: [Coupon] = [], riders: [Rider] = []) {
        self.products = products
        self.users = users
        self.coupons = coupons
        self.riders = riders
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        products = try container.decode([Product].self, forKey: .products)
        users = try container.decode([User].self, forKey: .users)
        coupons = try container.decodeIfPresent([Coupon].self, forKey: .coupons) ?? []
        riders = try container.decodeIfPresent([Rider].self, forKey: .riders) ?? []
    }

    /// Whether some rider delivers to `user`'s zone.
    public func isServed(_ user: User) -> Bool {
        riders.contains { $0.zones.contains(user.deliveryZone) }
    }

    /// This seed with every product's stock and every user's balance multiplied by `factor`,
    /// and `factor` coupons for each (`VIP20`, `VIP20-2`, …) (for runs with many orders).
    public func scaled(by factor: Int) -> Seed {
        Seed(products: products.map { var product = $0; product.stock *= factor; return product },
             users: users.map { var user = $0; user.balance *= factor; return user },
             coupons: coupons + (1..<Swift.max(1, factor)).flatMap { copy in
                 coupons.map { Coupon(code: "\($0.code)-\(copy + 1)", discount: $0.discount) }
             },
             riders: riders)
    }

    /// Writes the seed as JSON to `path`.
    public func write(to path: String) throws {
        try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: path))
    }

    /// The seed at `path`, or the bundled `seed.json` (samples/Sources/ServiceKit/seed.json) if nil.
    /// Throws a message naming the file if it cannot be read or parsed.
    public static func load(from path: String?) throws -> Seed {
        let url: URL
        if let path {
            url = URL(fileURLWithPath: path)
        } else {
            guard let bundled = Bundle.module.url(forResource: "seed", withExtension: "json") else {
                throw ServiceError("the bundled seed.json is missing; pass --seed PATH")
            }
            url = bundled
        }
        do {
            return try JSONDecoder().decode(Seed.self, from: Data(contentsOf: url))
        } catch {
            throw ServiceError("cannot read the seed \(url.path): \(error)")
        }
    }
}

/// A one-line error of a sample service.
public struct ServiceError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) { self.description = description }
}
