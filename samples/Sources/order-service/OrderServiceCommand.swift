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
            Event-sourced (--event-sourced, or --mode event-sourced): orders are the events of an aggregate on the topic \
            order-events, the saga's events are derived from them by a relay, and GETs read the table orders_view, a \
            projection of order-events (eventually consistent: POST answers the order's version, and \
            GET /orders/ID?min-version=N waits up to 5 s for the view to hold it, else answers 504).
            GET /metrics serves the service's metrics (the saga kit's spool_saga_*) in Prometheus's text format.
            Examples:
              order-service --broker tcp://127.0.0.1:7070 --db order.sqlite --http-port 8080
              order-service --event-sourced --rebuild-projection
            """
    )

    @OptionGroup var options: ServiceOptions

    @Option(help: "HTTP port on 127.0.0.1.")
    var httpPort: Int = 8080

    @Option(help: ArgumentHelp("Choreography and event-sourced: cancel an order whose payment and delivery have not both succeeded after this many milliseconds.", valueName: "ms"))
    var orderTimeoutMs: Int = 30_000

    @Option(help: ArgumentHelp("Orchestration: how long each step waits for its reply before sending its command again (three sends, then the step counts as failed).", valueName: "ms"))
    var stepTimeoutMs: Int = 10_000

    @Flag(help: "Event-sourced: empty orders_view and its projection position before starting, so that the projection replays order-events from offset 0 into it; the service then serves as usual (until the projection caught up, reads lag behind the writes and ?min-version waits).")
    var rebuildProjection = false

    func validate() throws {
        guard !rebuildProjection || options.mode == .eventSourced else { throw ValidationError("--rebuild-projection needs --event-sourced") }
        guard (1...65535).contains(httpPort) else { throw ValidationError("--http-port must be 1…65535") }
        guard orderTimeoutMs > 0 else { throw ValidationError("--order-timeout-ms must be positive") }
        guard stepTimeoutMs > 0 else { throw ValidationError("--step-timeout-ms must be positive") }
    }

    func run() async throws {
        let metrics = ServiceMetrics.bootstrap()
        guard let service = try await startService(OrderService.name, options: options, prepare: OrderService.prepare) else { return }
        service.logger.info("HTTP API on http://127.0.0.1:\(httpPort)", metadata: ["mode": "\(service.mode.rawValue)"])
        if service.mode == .eventSourced {
            let orders = try EventSourcedOrderService(participant: service.participant, seed: service.seed,
                                                      orderTimeout: .milliseconds(orderTimeoutMs), logger: service.logger)
            if rebuildProjection {
                try orders.rebuildProjection()
                service.logger.notice("orders_view emptied: the projection replays order-events from offset 0")
            }
            return try await runUntilSignalled([ParticipantService(running: orders.run), orders.application(port: httpPort, logger: service.logger, metrics: metrics)],
                                               logger: service.logger)
        }
        let orders = OrderService(participant: service.participant, seed: service.seed, orderTimeout: .milliseconds(orderTimeoutMs),
                                  mode: service.mode, stepTimeout: .milliseconds(stepTimeoutMs))
        orders.register()
        try await runUntilSignalled([orders.sagaService, orders.application(port: httpPort, logger: service.logger, metrics: metrics)],
                                    logger: service.logger)
    }
}
