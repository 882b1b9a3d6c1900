import ArgumentParser
import ServiceKit
import StockService

/// `stock-service`: reserves and restores stock for the order saga.
@main
struct StockServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stock-service",
        abstract: "The stock service of the saga sample: reserves stock (order-created, or the reserve-stock command), restores it when the order fails later.",
        discussion: "Example:\n  stock-service --broker tcp://127.0.0.1:7070 --db stock.sqlite"
    )

    @OptionGroup var options: ServiceOptions

    @OptionGroup var metricsOptions: MetricsOptions

    func run() async throws {
        let metrics = ServiceMetrics.bootstrap()
        guard let service = try await startService(StockService.name, options: options, prepare: StockService.prepare) else { return }
        StockService.register(on: service.participant, mode: service.mode)
        try await runUntilSignalled([ParticipantService(service.participant)] + metrics.listener(port: metricsOptions.port, logger: service.logger),
                                    logger: service.logger)
    }
}
