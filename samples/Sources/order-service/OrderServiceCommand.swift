import ArgumentParser
import OrderService
import ServiceKit

/// `order-service`: the HTTP API that starts order sagas, and the end of each saga.
@main
struct OrderServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "order-service",
        abstract: "The order service of the saga sample: HTTP API, order states, saga outcomes.",
        discussion: """
            POST /orders {"userId":"ada","productId":"apple","quantity":2} places an order (PENDING); \
            GET /orders/ID returns its state and reason; GET /orders?state=CANCELLED lists.
            Example:
              order-service --broker tcp://127.0.0.1:7070 --db order.sqlite --http-port 8080
            """
    )

    @OptionGroup var options: ServiceOptions

    @Option(help: "HTTP port on 127.0.0.1.")
    var httpPort: Int = 8080

    @Option(help: ArgumentHelp("Choreography: cancel an order whose payment and delivery have not both succeeded after this many milliseconds.", valueName: "ms"))
    var orderTimeoutMs: Int = 30_000

    @Option(help: ArgumentHelp("Orchestration: how long each step waits for its reply before sending its command again (three sends, then the step counts as failed).", valueName: "ms"))
    var stepTimeoutMs: Int = 10_000

    func validate() throws {
        guard (1...65535).contains(httpPort) else { throw ValidationError("--http-port must be 1…65535") }
        guard orderTimeoutMs > 0 else { throw ValidationError("--order-timeout-ms must be positive") }
        guard stepTimeoutMs > 0 else { throw ValidationError("--step-timeout-ms must be positive") }
    }

    func run() async throws {
        guard let service = try await startService(OrderService.name, options: options, prepare: OrderService.prepare) else { return }
        let orders = OrderService(participant: service.participant, seed: service.seed, orderTimeout: .milliseconds(orderTimeoutMs),
                                  mode: service.mode, stepTimeout: .milliseconds(stepTimeoutMs))
        orders.register()
        service.logger.info("HTTP API on http://127.0.0.1:\(httpPort)", metadata: ["mode": "\(service.mode.rawValue)"])
        try await runUntilSignalled([orders.sagaService, orders.application(port: httpPort, logger: service.logger)], logger: service.logger)
    }
}
