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

    @Option(help: ArgumentHelp("The simulated channel's file of accepted messages.", valueName: "path"))
    var channelDb = "notification-channel.sqlite"

    @Option(help: "Share of delivery attempts the channel refuses (0…1).")
    var failureRate = 0.2

    @Option(help: "Share of accepted deliveries whose acknowledgement is lost (0…1).")
    var lostAckRate = 0.05

    func validate() throws {
        guard (0...1).contains(failureRate), failureRate < 1 else { throw ValidationError("--failure-rate must be in 0…1 (1 would never deliver)") }
        guard (0...1).contains(lostAckRate), lostAckRate < 1 else { throw ValidationError("--lost-ack-rate must be in 0…1 (1 would never deliver)") }
    }

    func run() async throws {
        guard let service = try await startService(NotificationService.name, options: options, prepare: NotificationService.prepare) else { return }
        NotificationService.register(on: service.participant)
        let channel = try FlakyChannel(path: channelDb, failureRate: failureRate, lostAckRate: lostAckRate)
        let database = service.database
        let logger = service.logger
        try await runUntilSignalled([
            ParticipantService(service.participant),
            LoopService { await NotificationService.runCourier(database: database, channel: channel, logger: logger) },
        ], logger: logger)
    }
}
