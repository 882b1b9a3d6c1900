import ArgumentParser
import OrderSupervisor
import ServiceKit

/// `supervisor-service`: answers the order saga's failures with the declared rules (`--mode supervised`).
@main
struct SupervisorServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supervisor-service",
        abstract: "The supervisor of the saga sample: answers failure events and dead letters with the rules of its table.",
        discussion: """
            Runs with the services started with --mode supervised. `spool saga rules` prints its table; \
            `spool saga list --state parked` shows what it escalated.
            Example:
              supervisor-service --broker tcp://127.0.0.1:7070 --db supervisor.sqlite
            """
    )

    @OptionGroup var options: ServiceOptions

    @OptionGroup var metricsOptions: MetricsOptions

    func run() async throws {
        let metrics = ServiceMetrics.bootstrap()
        guard let service = try await startService(OrderSupervisor.name, options: options, prepare: { _, _ in }) else { return }
        try await runUntilSignalled([ParticipantService(OrderSupervisor.make(on: service.participant))]
                                        + metrics.listener(port: metricsOptions.port, logger: service.logger),
                                    logger: service.logger)
    }
}
