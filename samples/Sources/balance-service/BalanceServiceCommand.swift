import ArgumentParser
import BalanceService
import ServiceKit

/// `balance-service`: debits users for the order saga, refunds cancelled orders.
@main
struct BalanceServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balance-service",
        abstract: "The balance service of the saga sample: debits the user (stock-decreased, or the charge command), refunds a cancelled order.",
        discussion: "Example:\n  balance-service --broker tcp://127.0.0.1:7070 --db balance.sqlite"
    )

    @OptionGroup var options: ServiceOptions

    @OptionGroup var metricsOptions: MetricsOptions

    func run() async throws {
        let metrics = ServiceMetrics.bootstrap()
        guard let service = try await startService(BalanceService.name, options: options, prepare: BalanceService.prepare) else { return }
        BalanceService.register(on: service.participant, mode: service.mode)
        try await runUntilSignalled([ParticipantService(service.participant)] + metrics.listener(port: metricsOptions.port, logger: service.logger),
                                    logger: service.logger)
    }
}
