import GRDB
import Logging
import NotificationService
import SagaEvents
import Spool
import SpoolSaga
import SpoolTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct NotificationServiceTests {
    @Test func eachEndedOrderReachesAFlakyChannelExactlyOnce() async throws {
        let service = try await ServiceUnderTest(NotificationService.name, prepare: NotificationService.prepare) { participant, _ in
            NotificationService.register(on: participant)
        }
        // Half the attempts refused, half the accepted ones unacknowledged: retries, and repeats the key absorbs.
        let channel = try FlakyChannel(path: service.directory.appending("channel.sqlite"), failureRate: 0.5, lostAckRate: 0.5)
        let database = service.database
        let courier = Task { await NotificationService.runCourier(database: database, channel: channel, poll: .milliseconds(5),
                                                                        backoff: RetryPolicy(initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(20)),
                                                                        logger: Logger(label: "test")) }
        for index in 0..<20 {
            let id = "o\(index)"
            if index.isMultiple(of: 2) {
                try await service.publish(OrderCompleted(orderID: id, userID: "ada", total: index), saga: id)
            } else {
                try await service.publish(OrderCancelled(orderID: id, userID: "bob", reason: "stock: out of stock"), saga: id)
            }
        }
        // A second event for an order (another id, e.g. a re-emitted end) adds no second message.
        try await service.publish(OrderCompleted(orderID: "o0", userID: "ada", total: 0), saga: "o0")
        #expect(await service.waitUntilHandled(21))
        let delivered = await eventually {
            (try? await database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM notifications WHERE state = 'sent'") }) == 20
        }
        #expect(delivered)
        courier.cancel()
        await courier.value
        let messages = try channel.system.database.read { db in
            try Row.fetchAll(db, sql: "SELECT idempotency_key, text, deliveries FROM messages ORDER BY idempotency_key")
        }
        #expect(messages.count == 20)
        #expect(Set(messages.map { $0["idempotency_key"] as String }) == Set((0..<20).map { "o\($0)" }))
        let o1 = try #require(messages.first { $0["idempotency_key"] as String == "o1" })
        #expect((o1["text"] as String).contains("was cancelled (stock: out of stock)"))
        let attempts = try await database.read { db in try Int.fetchOne(db, sql: "SELECT sum(attempts) FROM notifications") } ?? 0
        #expect(attempts > 20, "the flaky channel made the courier retry")
        try await service.stop()
    }
}
