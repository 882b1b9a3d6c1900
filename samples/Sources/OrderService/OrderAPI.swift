import Foundation
import Hummingbird
import Logging
import ServiceKit

extension Order: ResponseEncodable {}

/// The body of `POST /orders`.
public struct PlaceOrder: Codable, Sendable {
    public var userId: String
    public var productId: String
    public var quantity: Int
    /// A coupon code, optional.
    public var coupon: String?

    public init(userId: String, productId: String, quantity: Int, coupon: String? = nil) {
        self.userId = userId
        self.productId = productId
        self.quantity = quantity
        self.coupon = coupon
    }
}

/// The body of `GET /orders`.
public struct OrderList: Codable, Sendable, ResponseEncodable {
    public var orders: [Order]
}

extension OrderService {
    /// The HTTP API:
    /// - `POST /orders` `{"userId","productId","quantity","coupon"?}` → 201 with the PENDING order (and a
    ///   `Location` header), 400 with the reason for a bad request;
    /// - `GET /orders/{id}` → 200 with state and reason, 404 if unknown;
    /// - `GET /orders?state=PENDING|COMPLETED|CANCELLED` → 200 `{"orders":[…]}`, oldest first;
    /// - `GET /health` → 200 `ok`.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("orders") { request, context -> EditedResponse<Order> in
            let body: PlaceOrder
            do {
                body = try await request.decode(as: PlaceOrder.self, context: context)
            } catch {
                throw HTTPError(.badRequest, message: "expected {\"userId\": string, \"productId\": string, \"quantity\": integer, \"coupon\": string (optional)}")
            }
            do {
                let order = try await self.place(userID: body.userId, productID: body.productId, quantity: body.quantity, coupon: body.coupon)
                return EditedResponse(status: .created, headers: [.location: "/orders/\(order.id)"], response: order)
            } catch let error as ServiceError {
                throw HTTPError(.badRequest, message: error.description)
            }
        }
        router.get("orders/:id") { _, context -> Order in
            let id = try context.parameters.require("id")
            guard let order = try await self.order(id) else { throw HTTPError(.notFound, message: "no order '\(id)'") }
            return order
        }
        router.get("orders") { request, _ -> OrderList in
            var state: Order.State?
            if let text = request.uri.queryParameters.get("state") {
                guard let parsed = Order.State(rawValue: text.uppercased()) else {
                    throw HTTPError(.badRequest, message: "state must be PENDING, COMPLETED or CANCELLED, not '\(text)'")
                }
                state = parsed
            }
            return OrderList(orders: try await self.orders(in: state))
        }
        router.get("health") { _, _ in "ok" }
        return router
    }

    /// The HTTP server on `127.0.0.1:port`, a ServiceLifecycle service.
    public func application(port: Int, logger: Logger) -> some ApplicationProtocol {
        Application(router: router(), configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port), serverName: "order-service"),
                    logger: logger)
    }
}
