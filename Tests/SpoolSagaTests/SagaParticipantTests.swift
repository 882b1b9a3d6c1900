import Foundation
import GRDB
import Spool
import SpoolSaga
import SpoolTesting
import Synchronization
import Testing

/// The saga kit against a real in-process broker and real SQLite files.
@Suite(.timeLimit(.minutes(2))) struct SagaParticipantTests {
    private func request(_ quantity: Int, saga: String) throws -> OutgoingRecord {
        try EventEnvelope(ItemRequested(item: "apple", quantity: quantity), correlationID: saga, source: "test").record()
    }

    private func publish(_ record: OutgoingRecord, to topic: String, on client: SpoolClient) async throws {
        try await client.publish(to: topic, key: record.key, value: record.value, headers: record.headers)
    }

    @Test func aStepEmitsItsOutcomeWithRoleAndCausationAndARedeliveryHasNoSecondEffect() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let database = try makeShelfDatabase(in: directory, stock: 10)
        let participant = try SagaParticipant(name: "shelf", client: client, database: database, configuration: quickRetries)
        participant.add(ReserveItem())
        let running = RunningParticipant(participant)

        let first = try request(4, saga: "s1")
        try await publish(first, to: ItemRequested.topic, on: client)
        try await publish(first, to: ItemRequested.topic, on: client)  // the same event again: a redelivery
        try await publish(try request(8, saga: "s2"), to: ItemRequested.topic, on: client)

        #expect(await eventually { participant.statistics.handled + participant.statistics.duplicates == 3 })
        #expect(await eventually { (try? await client.allRecords(of: ItemUnavailable.topic).count) == 1 })
        let reserved = try await client.allRecords(of: ItemReserved.topic)
        #expect(reserved.count == 1)
        #expect(reserved.first?.headers.text(of: EventHeaderName.role) == "success")
        #expect(reserved.first?.headers.text(of: EventHeaderName.source) == "shelf")
        #expect(reserved.first?.headers.text(of: EventHeaderName.causationID) == first.headers.text(of: EventHeaderName.eventID))
        #expect(reserved.first?.key == Array("s1".utf8))
        let unavailable = try await client.events(ItemUnavailable.self)
        #expect(unavailable.first?.payload.reason == "only 6 left" && unavailable.first?.metadata.correlationID == "s2")
        #expect(try await client.allRecords(of: ItemUnavailable.topic).first?.headers.text(of: EventHeaderName.role) == "failure")
        #expect(participant.statistics.duplicates == 1)
        #expect(try await database.read { db in try Int.fetchOne(db, sql: "SELECT quantity FROM shelf") } == 6)

        // The compensation undoes s1 once, however often it is asked.
        let chargeFailed = try EventEnvelope(ChargeFailed(item: "apple"), correlationID: "s1", source: "test").record()
        try await publish(chargeFailed, to: ChargeFailed.topic, on: client)
        try await publish(try EventEnvelope(ChargeFailed(item: "apple"), correlationID: "s1", source: "test").record(), to: ChargeFailed.topic, on: client)
        #expect(await eventually { participant.statistics.handled == 4 })
        #expect(await eventually { (try? await client.allRecords(of: ItemReleased.topic).count) == 1 })
        #expect(await eventually {
            (try? await database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_outbox WHERE sent_at IS NULL") }) == 0
        })
        let released = try await client.allRecords(of: ItemReleased.topic)
        #expect(released.count == 1 && released.first?.headers.text(of: EventHeaderName.role) == "compensation")
        #expect(try await database.read { db in try Int.fetchOne(db, sql: "SELECT quantity FROM shelf") } == 10)

        try await running.stop()
        client.close()
        await broker.stop()
    }

    @Test func aFailingHandlerRollsBackItsEventsRetriesAndDeadLettersWithTheReason() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let database = try makeShelfDatabase(in: directory)
        let participant = try SagaParticipant(name: "picky", client: client, database: database, configuration: quickRetries)
        let attempts = Mutex(0)
        let fixed = Mutex(false)
        participant.on(ItemRequested.self) { event, context in
            try context.emit(ItemReserved(item: event.payload.item, quantity: event.payload.quantity))
            attempts.withLock { $0 += 1 }
            if event.payload.quantity == 13 && !fixed.withLock({ $0 }) { throw CocoaError(.featureUnsupported) }
        }
        let running = RunningParticipant(participant)
        let unlucky = try request(13, saga: "bad")
        try await publish(unlucky, to: ItemRequested.topic, on: client)
        try await client.publish(to: ItemRequested.topic, key: Array("p".utf8), value: Array("not an event".utf8))
        try await publish(try request(1, saga: "good"), to: ItemRequested.topic, on: client)

        #expect(await eventually { (try? await client.allRecords(of: "item-requested.dlq").count) == 2 })
        #expect(await eventually { (try? await client.allRecords(of: ItemReserved.topic).count) == 1 })
        let letters = try await client.allRecords(of: "item-requested.dlq")
        let failed = try #require(letters.first { $0.key == Array("bad".utf8) })
        #expect(failed.value == unlucky.value)
        #expect(failed.headers.text(of: DeadLetterHeaderName.attempts) == "3")
        #expect(failed.headers.text(of: DeadLetterHeaderName.group) == "picky")
        #expect(failed.headers.text(of: DeadLetterHeaderName.origin) == "item-requested/0@0")
        #expect(failed.headers.text(of: DeadLetterHeaderName.error)?.isEmpty == false)
        #expect(failed.headers.text(of: EventHeaderName.correlationID) == "bad")  // the original headers stay
        let poison = try #require(letters.first { $0.key == Array("p".utf8) })
        #expect(poison.headers.text(of: DeadLetterHeaderName.attempts) == "1")
        #expect(poison.headers.text(of: DeadLetterHeaderName.error)?.contains("not an event") == true)
        // Only the good saga's event left the outbox: the failed attempts rolled back theirs.
        #expect(try await client.events(ItemReserved.self).map(\.metadata.correlationID) == ["good"])
        #expect(participant.statistics.retries == 2 && participant.statistics.deadLettered == 2)

        // After the fix, the dead letter put back on its topic (without the dlq headers) is handled once.
        fixed.withLock { $0 = true }
        try await client.publish(to: ItemRequested.topic, key: failed.key, value: failed.value,
                                 headers: failed.headers.filter { !$0.name.hasPrefix("spool-dlq-") })
        #expect(await eventually { (try? await client.allRecords(of: ItemReserved.topic).count) == 2 })
        #expect(try await client.events(ItemReserved.self).map(\.metadata.correlationID) == ["good", "bad"])
        try await running.stop()
        client.close()
        await broker.stop()
    }

    @Test func recordsFetchedTogetherShareACommitAndAFailingOneIsRetriedAloneInOrder() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let database = try makeShelfDatabase(in: directory)
        let commits = CommitCounter()
        database.add(transactionObserver: commits)
        // Everything is published before the participant starts, so its first fetch brings it all.
        let quantities = Array(1...40)
        for quantity in quantities {
            try await publish(try request(quantity, saga: "s\(quantity)"), to: ItemRequested.topic, on: client)
            if quantity == 20 { try await client.publish(to: ItemRequested.topic, key: Array("p".utf8), value: Array("not an event".utf8)) }
        }
        let participant = try SagaParticipant(name: "batcher", client: client, database: database, configuration: quickRetries)
        let attempts = Mutex<[Int: Int]>([:])
        participant.on(ItemRequested.self) { event, context in
            try context.db.execute(sql: "INSERT INTO held VALUES (?, ?, ?)", arguments: [event.metadata.correlationID, event.payload.item, event.payload.quantity])
            try context.emit(ItemReserved(item: event.payload.item, quantity: event.payload.quantity))
            let attempt = attempts.withLock { attempts in
                attempts[event.payload.quantity, default: 0] += 1
                return attempts[event.payload.quantity]!
            }
            if event.payload.quantity == 13 && attempt == 1 { throw CocoaError(.featureUnsupported) }  // fails once, after its effects
        }
        let running = RunningParticipant(participant)

        #expect(await eventually { (try? await client.allRecords(of: ItemReserved.topic).count) == quantities.count })
        let reserved = try await client.events(ItemReserved.self)
        #expect(reserved.map(\.payload.quantity) == quantities, "in the order they were published, each once")
        #expect(attempts.withLock { $0 } == Dictionary(uniqueKeysWithValues: quantities.map { ($0, $0 == 13 ? 2 : 1) }))
        #expect(try await database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM held") } == quantities.count,
                "the failed attempt's row was rolled back with its savepoint")
        #expect(await eventually { (try? await client.allRecords(of: "item-requested.dlq").count) == 1 })
        #expect(participant.statistics.handled == quantities.count && participant.statistics.retries == 1)
        // 40 events in a handful of commits: the run up to the failing record, the record retried
        // alone, the run up to the non-event, the rest (more if the first fetch came back early).
        #expect(commits.count < quantities.count / 4, "\(commits.count) commits handled events")

        try await running.stop()
        client.close()
        await broker.stop()
    }

    @Test func aCommandHasItsEffectOnceAndARepeatedCommandGetsTheSameReplyAgain() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let database = try makeShelfDatabase(in: directory, stock: 10)
        let participant = try SagaParticipant(name: "shelf", client: client, database: database, configuration: quickRetries)
        participant.handle(TakeItems.self) { command, context in
            try context.db.execute(sql: "UPDATE shelf SET quantity = quantity - ? WHERE item = 'apple'", arguments: [command.payload.quantity])
            return ItemsTaken(left: try Int.fetchOne(context.db, sql: "SELECT quantity FROM shelf") ?? -1)
        }
        let running = RunningParticipant(participant)
        let first = try EventEnvelope(TakeItems(quantity: 3), correlationID: "saga-1", source: "orchestrator").record()
        try await publish(first, to: TakeItems.topic, on: client)
        #expect(await eventually { (try? await client.allRecords(of: ItemsTaken.topic).count) == 1 })
        try await publish(first, to: TakeItems.topic, on: client)  // resent: the orchestrator saw no reply in time
        #expect(await eventually { (try? await client.allRecords(of: ItemsTaken.topic).count) == 2 })
        try await publish(try EventEnvelope(TakeItems(quantity: 2), correlationID: "saga-2", source: "orchestrator").record(),
                          to: TakeItems.topic, on: client)
        #expect(await eventually { (try? await client.allRecords(of: ItemsTaken.topic).count) == 3 })

        #expect(try await database.read { db in try Int.fetchOne(db, sql: "SELECT quantity FROM shelf") } == 5, "each command took once")
        let replies = try await client.allRecords(of: ItemsTaken.topic)
        #expect(replies[0].value == replies[1].value && replies[0].headers == replies[1].headers, "the same reply, byte for byte")
        let taken = try await client.events(ItemsTaken.self)
        #expect(taken.map(\.payload.left) == [7, 7, 5])
        #expect(taken[0].metadata.causationID == first.headers.text(of: EventHeaderName.eventID))
        #expect(taken.map(\.metadata.correlationID) == ["saga-1", "saga-1", "saga-2"])
        #expect(participant.statistics.handled == 2 && participant.statistics.duplicates == 1)
        try await running.stop()
        client.close()
        await broker.stop()
    }

    @Test func aDecodeFailureIsDeadLetteredAtOnce() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let participant = try SagaParticipant(name: "strict", client: client, database: try makeShelfDatabase(in: directory),
                                              configuration: quickRetries)
        participant.on(ItemRequested.self) { _, _ in }
        let running = RunningParticipant(participant)
        let metadata = EventMetadata(eventType: ItemRequested.eventType, correlationID: "x", source: "test")
        try await client.publish(to: ItemRequested.topic, key: nil, value: Array(#"{"item":1}"#.utf8), headers: metadata.headers)
        #expect(await eventually { (try? await client.allRecords(of: "item-requested.dlq").count) == 1 })
        let letter = try await client.allRecords(of: "item-requested.dlq")[0]
        #expect(letter.headers.text(of: DeadLetterHeaderName.attempts) == "1")
        #expect(letter.headers.text(of: DeadLetterHeaderName.error)?.contains("does not decode") == true)
        try await running.stop()
        client.close()
        await broker.stop()
    }

    @Test func aTimeoutFiresUnlessCancelledAndOneDueWhileTheServiceWasDownFiresWhenItStarts() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let database = try makeShelfDatabase(in: directory)
        let participant = try SagaParticipant(name: "waiter", client: client, database: database, configuration: quickRetries)
        // Started outside any handler: the sagas' first events, with timeouts.
        let before = EventMetadata.now()
        try await participant.transaction { context in
            try context.emit(ItemRequested(item: "apple", quantity: 1), correlationID: "fires")
            try context.scheduleTimeout(ReplyOverdue(note: "no reply"), after: .milliseconds(300), correlationID: "fires")
            try context.scheduleTimeout(ReplyOverdue(note: "cancelled"), after: .milliseconds(300), correlationID: "cancelled")
            try context.scheduleTimeout(ReplyOverdue(note: "later"), after: .seconds(1), correlationID: "restart")
        }
        #expect(try await participant.transaction { context in try context.cancelTimeout(ReplyOverdue.self, correlationID: "cancelled") })
        // The service is down when the third timeout falls due.
        try await Task.sleep(for: .milliseconds(1200))
        let running = RunningParticipant(participant)
        #expect(await eventually { (try? await client.allRecords(of: ReplyOverdue.topic).count) == 2 })
        try await Task.sleep(for: .milliseconds(300))
        let overdue = try await client.allRecords(of: ReplyOverdue.topic)
        #expect(Set(overdue.compactMap { $0.headers.text(of: EventHeaderName.correlationID) }) == ["fires", "restart"])
        #expect(overdue.allSatisfy { $0.headers.text(of: EventHeaderName.role) == "timeout" })
        // Its event time is when it fired, not when it was scheduled.
        let firedAt = try #require(overdue.first?.headers.text(of: EventHeaderName.time).flatMap(EventMetadata.parseTime))
        #expect(firedAt >= before + 300)
        #expect(try await client.allRecords(of: ItemRequested.topic).count == 1)
        #expect(participant.statistics.timeoutsFired == 2)
        try await running.stop()
        client.close()
        await broker.stop()
    }

    @Test func eventsEmittedWhileTheBrokerIsDownArePublishedWhenItIsBack() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker(transport: .tcp)
        let client = try await broker.makeClient()
        let participant = try SagaParticipant(name: "patient", client: client, database: try makeShelfDatabase(in: directory),
                                              configuration: quickRetries)
        let running = RunningParticipant(participant)
        await broker.stop()
        for saga in 0..<20 {
            _ = try await participant.transaction { context in
                try context.emit(ItemRequested(item: "apple", quantity: saga), correlationID: "saga-\(saga)")
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        let restarted = try await broker.restart()
        #expect(await eventually { (try? await client.allRecords(of: ItemRequested.topic).count) ?? 0 >= 20 })
        let quantities = try await client.events(ItemRequested.self).map(\.payload.quantity)
        #expect(Set(quantities) == Set(0..<20))
        // In order (one partition): the relay publishes in insertion order.
        #expect(quantities == quantities.sorted())
        #expect(await eventually {
            (try? await participant.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_outbox WHERE sent_at IS NULL") }) == 0
        })
        try await running.stop()
        client.close()
        await restarted.stop()
    }

    @Test func outboxRowsWrittenByAnEarlierVersionArePublishedWithTheirHeaders() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let database = try makeShelfDatabase(in: directory)
        let participant = try SagaParticipant(name: "upgraded", client: client, database: database, configuration: quickRetries)
        let event = try request(3, saga: "old")
        // Headers as versions before 0.x stored them: a JSON array of {name, value (base64)}.
        let legacyHeaders = "[" + event.headers.map { #"{"name":"\#($0.name)","value":"\#(Data($0.value).base64EncodedString())"}"# }
            .joined(separator: ",") + "]"
        try await database.write { db in
            try db.execute(sql: "INSERT INTO spool_outbox (event_id, topic, key, value, headers, timestamp) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: ["e-old", ItemRequested.topic, Data(event.key ?? []), Data(event.value), Data(legacyHeaders.utf8), 1_700_000_000_000])
        }
        let running = RunningParticipant(participant)
        #expect(await eventually { (try? await client.allRecords(of: ItemRequested.topic).count) == 1 })
        let published = try #require(try await client.allRecords(of: ItemRequested.topic).first)
        #expect(published.headers == event.headers && published.value == event.value && published.timestamp == 1_700_000_000_000)
        try await running.stop()
        client.close()
        await broker.stop()
    }

    @Test func runFailsWithTheReasonWhenItsTopicCannotExistAndCanRunAgainAfterAStop() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker(configure: { $0.broker.autoCreateTopics = false })
        let client = try await broker.makeClient()
        let participant = try SagaParticipant(name: "lonely", client: client, database: try makeShelfDatabase(in: directory),
                                              configuration: quickRetries)
        participant.on(ItemRequested.self) { _, _ in }
        let error = await #expect(throws: SpoolError.self) { try await participant.run() }
        #expect(error?.code == .unknownTopic)

        // Once the topic exists, the same participant runs, stops and runs again.
        try await client.createTopic(ItemRequested.topic)
        for round in 0..<2 {
            let running = RunningParticipant(participant)
            try await publish(try request(1, saga: "r\(round)"), to: ItemRequested.topic, on: client)
            #expect(await eventually { participant.statistics.handled == round + 1 })
            try await running.stop()
        }
        client.close()
        await broker.stop()
    }

    @Test func theInboxForgetsEventIdsAfterItsRetention() async throws {
        let directory = try TemporaryDirectory()
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let database = try makeShelfDatabase(in: directory)
        var configuration = quickRetries
        configuration.inboxRetention = .milliseconds(300)
        let participant = try SagaParticipant(name: "forgetful", client: client, database: database, configuration: configuration)
        participant.on(ItemRequested.self) { _, _ in }
        let running = RunningParticipant(participant)
        let event = try request(1, saga: "again")
        try await publish(event, to: ItemRequested.topic, on: client)
        #expect(await eventually { participant.statistics.handled == 1 })
        #expect(await eventually {
            (try? await database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_inbox") }) == 0
        })
        // Past the retention the same event is new again: the documented trade-off.
        try await publish(event, to: ItemRequested.topic, on: client)
        #expect(await eventually { participant.statistics.handled == 2 })
        #expect(participant.statistics.duplicates == 0)
        try await running.stop()
        client.close()
        await broker.stop()
    }
}
