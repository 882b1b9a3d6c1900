import ArgumentParser
import NotificationService
import ServiceKit

/// `notification-service`: tells users how their order ended, through a flaky channel.
@main
struct NotificationServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notification-service",
        abstract: "The notification service of the saga sample: one message per ended order, retried until the channel takes it.",
        discussion: """
            The channel is simulated by an SQLite file of accepted messages (--channel-db) that fails \
            --failure-rate of the attempts and loses the acknowledgement of --lost-ack-rate of the accepted ones.
            Example:
              notification-service --broker tcp://127.0.0.1:7070 --db notification.sqlite --failure-rate 0.3
            """
    )

    @OptionGroup var options: ServiceOptions

    @OptionGroup var metricsOptions: MetricsOptions

    @Option(help: ArgumentHelp("The simulated channel's file of accepted messages.", valueName: "path"))
    var channelDb = "notification-channel.sqlite"

    @OptionGroup var flakiness: FlakinessOptions

    func run() async throws {
        let metrics = ServiceMetrics.bootstrap()
        guard let service = try await startService(NotificationService.name, options: options, prepare: NotificationService.prepare) else { return }
        NotificationService.register(on: service.participant)
        let channel = try FlakyChannel(path: channelDb, failureRate: flakiness.failureRate, lostAckRate: flakiness.lostAckRate)
        let database = service.database
        let logger = service.logger
        try await runUntilSignalled([
            ParticipantService(service.participant),
            LoopService { await NotificationService.runCourier(database: database, channel: channel, logger: logger) },
        ] + metrics.listener(port: metricsOptions.port, logger: logger), logger: logger)
    }
}
