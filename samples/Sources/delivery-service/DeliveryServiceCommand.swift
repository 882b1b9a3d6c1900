import ArgumentParser
import DeliveryService
import ServiceKit
import SpoolSaga

/// `delivery-service`: registers a rider for each paid order, through a flaky dispatch.
@main
struct DeliveryServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delivery-service",
        abstract: "The delivery service of the saga sample: a rider registered for each paid order, retried, or given up after --max-attempts.",
        discussion: """
            The rider dispatch is simulated by an SQLite file (--dispatch-db) holding the seed's riders and one \
            registration per order; it refuses --failure-rate of the registration calls, loses the acknowledgement \
            of --lost-ack-rate of the accepted ones, and has no rider for a zone no seed rider serves.
            Example:
              delivery-service --broker tcp://127.0.0.1:7070 --db delivery.sqlite --failure-rate 0.3
            """
    )

    @OptionGroup var options: ServiceOptions

    @OptionGroup var metricsOptions: MetricsOptions

    @Option(help: ArgumentHelp("The simulated rider dispatch's file.", valueName: "path"))
    var dispatchDb = "delivery-dispatch.sqlite"

    @OptionGroup var flakiness: FlakinessOptions

    @Option(help: "Registration calls per order before the delivery is given up (delivery-failed); waits of 100 ms doubling to 1 s between them.")
    var maxAttempts = 10

    func validate() throws {
        guard (1...100).contains(maxAttempts) else { throw ValidationError("--max-attempts must be 1…100") }
    }

    func run() async throws {
        let metrics = ServiceMetrics.bootstrap()
        guard let service = try await startService(DeliveryService.name, options: options, prepare: DeliveryService.prepare) else { return }
        DeliveryService.register(on: service.participant, mode: service.mode)
        let dispatch = try RiderDispatch(path: dispatchDb, riders: service.seed.riders, failureRate: flakiness.failureRate, lostAckRate: flakiness.lostAckRate)
        let (participant, logger, retry) = (service.participant, service.logger, RetryPolicy(maxAttempts: maxAttempts, maxBackoff: .seconds(1)))
        try await runUntilSignalled([
            ParticipantService(participant),
            LoopService { await DeliveryService.runCourier(participant: participant, dispatch: dispatch, retry: retry, logger: logger) },
        ] + metrics.listener(port: metricsOptions.port, logger: logger), logger: logger)
    }
}
