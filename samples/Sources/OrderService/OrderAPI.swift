import Foundation
import Hummingbird
import Logging
import ServiceKit
import Spool

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

/// What the HTTP API serves: ``OrderService`` (its table) or ``EventSourcedOrderService`` (its read model).
public protocol OrderBook: Sendable {
    /// Places an order; throws ``ServiceError`` for a bad request.
    func place(userID: String, productID: String, quantity: Int, coupon: String?) async throws -> Order
    /// The order `id`, or nil; with `minVersion`, once the reads have caught up with that version.
    func order(_ id: String, minVersion: Int64?) async throws -> Order?
    /// Orders in `state` (all if nil), oldest first.
    func orders(in state: Order.State?) async throws -> [Order]
}

extension OrderBook {
    /// The HTTP API:
    /// - `POST /orders` `{"userId","productId","quantity","coupon"?}` → 201 with the PENDING order (and a
    ///   `Location` header; event-sourced, with its `version`), 400 with the reason for a bad request;
    /// - `GET /orders/{id}` → 200 with state and reason, 404 if unknown; `?min-version=N` (event-sourced:
    ///   the version a POST answered) waits up to the read timeout (5 s) for the read model to hold
    ///   the order at version N or later, then answers 504 saying what it holds (the other modes
    ///   read their writes at once);
    /// - `GET /orders?state=PENDING|COMPLETED|CANCELLED` → 200 `{"orders":[…]}`, oldest first;
    /// - `GET /health` → 200 `ok`;
    /// - `GET /metrics` → 200 with `metrics` in Prometheus's text format (when given).
    public func router(metrics: ServiceMetrics? = nil) -> Router<BasicRequestContext> {
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
            } catch let error as SpoolError where error.isRetriable {
                // Event-sourced, placing an order appends to the broker: while it restarts, say so
                // and let the caller retry (the order may have been stored if the error says so).
                throw HTTPError(.serviceUnavailable, message: "the order store is unavailable, try again: \(error.message)")
            }
        }
        router.get("orders/:id") { request, context -> Order in
            let id = try context.parameters.require("id")
            var minVersion: Int64?
            if let text = request.uri.queryParameters.get("min-version") {
                guard let parsed = Int64(text), parsed >= 0 else {
                    throw HTTPError(.badRequest, message: "min-version must be a version (a non-negative integer), not '\(text)'")
                }
                minVersion = parsed
            }
            let found: Order?
            do {
                found = try await self.order(id, minVersion: minVersion)
            } catch let behind as ReadModelBehind {
                throw HTTPError(.gatewayTimeout, message: behind.description)
            }
            guard let order = found else { throw HTTPError(.notFound, message: "no order '\(id)'") }
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
        metrics?.addRoute(to: router)
        return router
    }

    /// The HTTP server on `127.0.0.1:port`, a ServiceLifecycle service; with `metrics`, it serves `GET /metrics` too.
    public func application(port: Int, logger: Logger, metrics: ServiceMetrics? = nil) -> some ApplicationProtocol {
        Application(router: router(metrics: metrics), configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port), serverName: "order-service"),
                    logger: logger)
    }
}
