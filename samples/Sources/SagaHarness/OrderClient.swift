import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small client of the order service's HTTP API.
public struct OrderClient: Sendable {
    /// The order as the API returns it (the fields the harness reads).
    public struct Order: Codable, Sendable {
        public var id: String
        public var userId: String
        public var productId: String
        public var quantity: Int
        public var total: Int
        public var state: String
        public var reason: String?
        public var coupon: String?
        /// Event-sourced: the version of the order that was read or written; nil in the other modes.
        public var version: Int64?
    }

    private struct OrderList: Codable { var orders: [Order] }

    /// The service's base URL (`http://127.0.0.1:8080`).
    public let baseURL: URL
    private let session: URLSession

    public init(baseURL: URL) {
        self.baseURL = baseURL
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 5
        session = URLSession(configuration: configuration)
    }

    /// Places an order; returns it (PENDING) or throws with the status and body of a refusal, or
    /// the transport error (service down).
    public func place(userID: String, productID: String, quantity: Int, coupon: String? = nil) async throws -> Order {
        var request = URLRequest(url: baseURL.appendingPathComponent("orders"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        var body: [String: Any] = ["userId": userID, "productId": productID, "quantity": quantity]
        body["coupon"] = coupon
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, response) = try await session.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 201 else {
            let message = "POST /orders: HTTP \(status): \(String(decoding: data, as: UTF8.self))"
            throw status == 503 ? ServiceUnavailable(message: message) : HarnessError(message)
        }
        return try JSONDecoder().decode(Order.self, from: data)
    }

    /// HTTP 503: the service could not reach what it stores orders in (the broker, while it
    /// restarts); the same request may succeed later.
    public struct ServiceUnavailable: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Places an order, retrying every 200 ms while the service cannot be reached or answers 503
    /// (it, or the broker it stores orders in, may be restarting), up to `timeout`. Any other
    /// answer than 201 is thrown at once.
    public func placePatiently(userID: String, productID: String, quantity: Int, coupon: String? = nil,
                               timeout: Duration = .seconds(60)) async throws -> Order {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                return try await place(userID: userID, productID: productID, quantity: quantity, coupon: coupon)
            } catch let error as HarnessError {
                throw error
            } catch {
                guard ContinuousClock.now < deadline else { throw HarnessError("POST /orders: the service did not answer within \(timeout): \(error)") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// The order `id`, or nil if the service answers 404. With `minVersion` (event-sourced), the
    /// service answers once its read model holds that version, or 504 (thrown) after its wait.
    public func order(_ id: String, minVersion: Int64? = nil) async throws -> Order? {
        var components = URLComponents(url: baseURL.appendingPathComponent("orders").appendingPathComponent(id), resolvingAgainstBaseURL: false)!
        if let minVersion { components.queryItems = [URLQueryItem(name: "min-version", value: String(minVersion))] }
        let (data, response) = try await session.data(from: components.url!)
        switch (response as? HTTPURLResponse)?.statusCode {
        case 200: return try JSONDecoder().decode(Order.self, from: data)
        case 404: return nil
        case let status: throw HarnessError("GET /orders/\(id): HTTP \(status ?? 0): \(String(decoding: data, as: UTF8.self))")
        }
    }

    /// Orders in `state` (all if nil).
    public func orders(state: String? = nil) async throws -> [Order] {
        var components = URLComponents(url: baseURL.appendingPathComponent("orders"), resolvingAgainstBaseURL: false)!
        if let state { components.queryItems = [URLQueryItem(name: "state", value: state)] }
        let (data, response) = try await session.data(from: components.url!)
        guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw HarnessError("GET /orders: HTTP \((response as? HTTPURLResponse)?.statusCode ?? 0)") }
        return try JSONDecoder().decode(OrderList.self, from: data).orders
    }

    /// Waits until the service answers `GET /health`, up to `timeout`.
    public func waitUntilUp(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let (_, response) = try? await session.data(from: baseURL.appendingPathComponent("health")),
               (response as? HTTPURLResponse)?.statusCode == 200 {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("the order service at \(baseURL) did not come up within \(timeout)")
    }
}
