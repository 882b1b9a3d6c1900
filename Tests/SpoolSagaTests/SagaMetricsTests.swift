import Foundation
import Metrics
import MetricsTestKit
import Spool
import SpoolSaga
import SpoolTesting
import Synchronization
import Testing

/// Runs `body` with a fresh `TestMetrics` as the metrics factory of its task and of the tasks it
/// starts (a task-local factory: tests running in parallel each see their own metrics, and
/// nothing is bootstrapped for the process).
private func withTestMetrics(_ body: (TestMetrics) async throws -> Void) async throws {
    let metrics = TestMetrics()
    try await withMetricsFactory(metrics) { try await body(metrics) }
}

extension TestMetrics {
    /// The total of counter `label` with labels `topic` (and `group` when given); nil if it was never made.
    func total(_ label: String, topic: String, group: String? = nil) -> Int64? {
        try? expectCounter(label, [("topic", topic)] + (group.map { [("group", $0)] } ?? [])).totalValue
    }
}

extension SpoolClient {
    /// Publishes `event` of saga `saga` to `E.topic` as a service outside the kit would; returns the record sent.
    @discardableResult
    fileprivate func publish<E: SpoolEvent>(_ event: E, saga: String) async throws -> OutgoingRecord {
        let record = try EventEnvelope(event, correlationID: saga, source: "test").record()
        try await resend(record, to: E.topic)
        return record
    }

    /// Publishes `record` (again) to `topic`.
    fileprivate func resend(_ record: OutgoingRecord, to topic: String) async throws {
        try await publish(to: topic, key: record.key, value: record.value, headers: record.headers)
    }
}

/// The saga kit's metrics (docs/http-api.md, "Saga kit") against a real in-process broker and real SQLite files.
@Suite(.timeLimit(.minutes(2))) struct SagaMetricsTests {
    @Test func eachEventHandledCountsOnceAndThePublishedOutboxCountsItsEventsAndCompensations() async throws {
        try await withTestMetrics { metrics in
            let directory = try TemporaryDirectory()
            let broker = try InProcessBroker()
            let client = try await broker.makeClient()
            let group = "metered-shelf"
            let participant = try SagaParticipant(name: group, client: client, database: try makeShelfDatabase(in: directory, stock: 10),
                                                  configuration: quickRetries)
            participant.add(ReserveItem())
            let running = RunningParticipant(participant)

            let first = try await client.publish(ItemRequested(item: "apple", quantity: 4), saga: "s1")
            try await client.resend(first, to: ItemRequested.topic)  // a redelivery: dropped by the inbox, not counted
            try await client.publish(ItemRequested(item: "apple", quantity: 8), saga: "s2")
            #expect(await eventually { participant.statistics.handled + participant.statistics.duplicates == 3 })
            #expect(metrics.total("spool_saga_events_handled_total", topic: ItemRequested.topic, group: group) == 2)

            try await client.publish(ChargeFailed(item: "apple"), saga: "s1")
            #expect(await eventually { metrics.total("spool_saga_events_emitted_total", topic: ItemReleased.topic) == 1 })
            #expect(metrics.total("spool_saga_events_handled_total", topic: ChargeFailed.topic, group: group) == 1)
            #expect(metrics.total("spool_saga_events_emitted_total", topic: ItemReserved.topic) == 1)
            #expect(metrics.total("spool_saga_events_emitted_total", topic: ItemUnavailable.topic) == 1)
            #expect(metrics.total("spool_saga_compensations_total", topic: ItemReleased.topic) == 1)
            #expect(metrics.total("spool_saga_compensations_total", topic: ItemReserved.topic) == 0, "a success is no compensation")
            // Made when the participant started, at zero: nothing failed.
            #expect(metrics.total("spool_saga_retries_total", topic: ItemRequested.topic, group: group) == 0)
            #expect(metrics.total("spool_saga_dead_letters_total", topic: ItemRequested.topic, group: group) == 0)

            let durations = try metrics.expectTimer("spool_saga_handler_duration_seconds", [("topic", ItemRequested.topic), ("group", group)])
            #expect(durations.values.count == 2 && durations.values.allSatisfy { $0 > 0 }, "one run per event handled, none for the redelivery")
            let depth = try metrics.expectGauge("spool_saga_outbox_depth", [("group", group)])
            #expect(depth.values.contains { $0 >= 1 }, "each committed outcome was counted in")
            #expect(await eventually { depth.lastValue == 0 }, "and published out")

            try await running.stop()
            client.close()
            await broker.stop()
        }
    }

    @Test func aFailingHandlerCountsItsRetriesAndDeadLettersAndEveryRunIsTimed() async throws {
        try await withTestMetrics { metrics in
            let directory = try TemporaryDirectory()
            let broker = try InProcessBroker()
            let client = try await broker.makeClient()
            let group = "metered-picky"
            let participant = try SagaParticipant(name: group, client: client, database: try makeShelfDatabase(in: directory),
                                                  configuration: quickRetries)  // 3 attempts
            participant.on(ItemRequested.self) { event, context in
                try context.emit(ItemReserved(item: event.payload.item, quantity: event.payload.quantity))
                if event.payload.quantity == 13 { throw CocoaError(.featureUnsupported) }
            }
            let running = RunningParticipant(participant)
            try await client.publish(ItemRequested(item: "apple", quantity: 13), saga: "bad")
            try await client.publish(to: ItemRequested.topic, key: Array("p".utf8), value: Array("not an event".utf8))
            try await client.publish(ItemRequested(item: "apple", quantity: 1), saga: "good")

            #expect(await eventually { metrics.total("spool_saga_dead_letters_total", topic: ItemRequested.topic, group: group) == 2 })
            #expect(await eventually { metrics.total("spool_saga_events_emitted_total", topic: ItemReserved.topic) == 1 },
                    "only the good event's outcome: the failed attempts rolled theirs back")
            #expect(metrics.total("spool_saga_retries_total", topic: ItemRequested.topic, group: group) == 2)
            #expect(metrics.total("spool_saga_events_handled_total", topic: ItemRequested.topic, group: group) == 1)
            let durations = try metrics.expectTimer("spool_saga_handler_duration_seconds", [("topic", ItemRequested.topic), ("group", group)])
            #expect(durations.values.count == 4, "three failed runs of the bad event, one of the good; the record that is no event ran nothing")
            #expect(participant.statistics.retries == 2 && participant.statistics.deadLettered == 2)

            try await running.stop()
            client.close()
            await broker.stop()
        }
    }

    @Test func anOrchestratorsUndoCommandIsACompensationAndItsRepliesAreCountedUnderItsName() async throws {
        try await withTestMetrics { metrics in
            let world = try await PurchaseWorld(balance: 10)  // the charge is refused: take-items is undone
            try world.startShelf()
            try world.startWallet()
            try world.startCourier()
            let running = RunningOrchestrator(try world.makeOrchestrator(purchaseSaga()))
            try await running.orchestrator.start(purchaseSaga(), id: "m-1", data: Purchase(quantity: 4, amount: 40))
            #expect(await running.reaches("m-1", .compensated))

            let commands = try await world.client.allRecords(of: TakeItems.topic)
            let roles = commands.map { [$0.headers.text(of: EventHeaderName.eventType), $0.headers.text(of: EventHeaderName.role)] }
            #expect(roles == [[TakeItems.eventType, "success"], [ReturnItems.eventType, "compensation"]])
            #expect(await eventually { metrics.total("spool_saga_compensations_total", topic: TakeItems.topic) == 1 })
            #expect(metrics.total("spool_saga_events_emitted_total", topic: TakeItems.topic) == 2)
            // The state change to compensated is a compensation too, on the kit's state topic.
            #expect(await eventually { metrics.total("spool_saga_compensations_total", topic: SagaStateChanged.topic) == 1 })
            // Replies to take, charge and return; the group label is the orchestrator participant's name.
            #expect(await eventually {
                metrics.total("spool_saga_events_handled_total", topic: ItemsTaken.topic, group: running.orchestrator.participant.name) == 3
            })
            #expect(metrics.total("spool_saga_events_handled_total", topic: TakeItems.topic, group: "shelf") == 2)
            #expect(metrics.total("spool_saga_events_handled_total", topic: Charge.topic, group: "wallet") == 1)

            try await running.stop()
            try await world.shutdown()
        }
    }
}
