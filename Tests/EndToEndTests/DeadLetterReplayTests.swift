import Foundation
import GRDB
import Spool
import SpoolSaga
import SpoolTesting
import Synchronization
import Testing

private struct ParcelRequested: SpoolEvent {
    static let eventType = "parcel-requested"
    var parcel: String
}

private struct ParcelShipped: SpoolEvent {
    static let eventType = "parcel-shipped"
    var parcel: String
}

/// The dead-letter round trip as an operator runs it: a handler that cannot succeed yet sends its
/// record to `<topic>.dlq`; after the fix, `spool replay <topic>.dlq --to <topic>` puts it back and
/// the service handles it, once.
@Suite struct DeadLetterReplayTests {
    @Test(.timeLimit(.minutes(3)))
    func aDeadLetterReplayedWithTheCLIAfterTheFixIsHandledOnce() async throws {
        let directory = try TemporaryDirectory(prefix: "spool-e2e-dlq")
        let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
        defer { daemon.cleanUp() }
        let client = try await daemon.makeClient()
        defer { client.close() }
        let database = try DatabaseQueue(path: directory.appending("shipping.sqlite"))
        let participant = try SagaParticipant(
            name: "shipping", client: client, database: database,
            configuration: SagaConfiguration(retry: RetryPolicy(maxAttempts: 2, initialBackoff: .milliseconds(10)), pollInterval: .milliseconds(50),
                                             consumer: ConsumerConfiguration(sessionTimeout: .seconds(2))))
        let carrierUp = Mutex(false)
        participant.on(ParcelRequested.self) { event, context in
            guard carrierUp.withLock({ $0 }) else { throw CocoaError(.fileReadNoPermission) }
            try context.emit(ParcelShipped(parcel: event.payload.parcel))
        }
        let running = Task { try await participant.run() }

        let request = EventEnvelope(ParcelRequested(parcel: "p-7"), correlationID: "saga-7", source: "desk")
        let record = try request.record()
        try await client.publish(to: ParcelRequested.topic, key: record.key, value: record.value, headers: record.headers)
        #expect(await eventually { participant.statistics.deadLettered == 1 })

        carrierUp.withLock { $0 = true }
        let replay = try await runSpool(["replay", "parcel-requested.dlq", "--from-beginning", "--to", "parcel-requested",
                                         "--broker", daemon.endpoint])
        #expect(replay.termination == .exited(0), "\(replay)")
        #expect(await eventually { participant.statistics.handled == 1 })
        #expect(await eventually { (try? await client.readToEnd(of: ParcelShipped.topic).count) == 1 })
        let shipped = try EventEnvelope<ParcelShipped>(record: try await client.readToEnd(of: ParcelShipped.topic)[0])
        #expect(shipped.metadata.causationID == request.metadata.eventID && shipped.metadata.correlationID == "saga-7")
        // The record put back is the original: same event id, no dead-letter headers.
        let putBack = try await client.readToEnd(of: ParcelRequested.topic)
        #expect(putBack.count == 2)
        #expect(putBack.last?.headers == record.headers)

        // A second replay of the same dead letter is a redelivery: the inbox skips it.
        let again = try await runSpool(["replay", "parcel-requested.dlq", "--from-beginning", "--to", "parcel-requested",
                                        "--broker", daemon.endpoint])
        #expect(again.termination == .exited(0), "\(again)")
        #expect(await eventually { participant.statistics.duplicates == 1 })
        #expect(participant.statistics.handled == 1)
        #expect(try await client.readToEnd(of: ParcelShipped.topic).count == 1)
        running.cancel()
        try await running.value
    }
}
