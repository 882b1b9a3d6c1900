import Foundation
import GRDB
import Spool
import SpoolSaga
import SpoolTesting
import ServiceKit
import Synchronization

/// One sample service's handlers running on a real in-process broker and a real SQLite file.
final class ServiceUnderTest: Sendable {
    let broker: InProcessBroker
    let client: SpoolClient
    let directory: TemporaryDirectory
    let database: DatabasePool
    let participant: SagaParticipant
    let seed: Seed
    private let run: @Sendable (SagaParticipant) async throws -> Void
    private let task: Mutex<Task<Void, any Error>>

    /// Prepares the database of `name` from the bundled seed, registers with `register`, and runs
    /// `run` (default: the participant's run loop).
    init(_ name: String, prepare: (any DatabaseWriter, Seed) throws -> Void, register: (SagaParticipant, Seed) throws -> Void,
         run: @escaping @Sendable (SagaParticipant) async throws -> Void = { try await $0.run() }) async throws {
        broker = try InProcessBroker()
        client = try await broker.makeClient()
        directory = try TemporaryDirectory(prefix: "saga-\(name)")
        database = try openDatabase(at: directory.appending("\(name).sqlite"))
        seed = try Seed.load(from: nil)
        try prepare(database, seed)
        let configuration = SagaConfiguration(pollInterval: .milliseconds(20), consumer: ConsumerConfiguration(sessionTimeout: .seconds(2)))
        participant = try SagaParticipant(name: name, client: client, database: database, configuration: configuration)
        try register(participant, seed)
        self.run = run
        task = Mutex(Task { [participant] in try await run(participant) })
    }

    /// Stops the service's run (as a graceful shutdown would), then `between` (the database as
    /// the service left it), then runs it again.
    func restart(between: () throws -> Void = {}) async throws {
        let running = task.withLock { $0 }
        running.cancel()
        try await running.value
        try between()
        task.withLock { [participant, run] in $0 = Task { try await run(participant) } }
    }

    /// Publishes `event` of saga `saga` as service `source` would; returns its metadata.
    @discardableResult
    func publish<E: SpoolEvent>(_ event: E, saga: String, source: String = "test") async throws -> EventMetadata {
        let envelope = EventEnvelope(event, correlationID: saga, source: source)
        try await publish(envelope)
        return envelope.metadata
    }

    /// Publishes `envelope` as is (the same envelope twice is a redelivery).
    func publish<E: SpoolEvent>(_ envelope: EventEnvelope<E>) async throws {
        let record = try envelope.record()
        try await client.publish(to: E.topic, key: record.key, value: record.value, headers: record.headers)
    }

    /// The events of type `E` published so far, with their records (a topic may carry other
    /// types too: a command topic, a reply topic).
    func events<E: SpoolEvent>(_ type: E.Type) async throws -> [(event: EventEnvelope<E>, record: SpoolRecord)] {
        guard let info = try await client.topics().first(where: { $0.name == E.topic }) else { return [] }
        var records: [SpoolRecord] = []
        for partition in info.partitions { records += try await client.readToEnd(of: E.topic, partition: partition.partition) }
        return try records.filter { try EventMetadata(headers: $0.headers)?.eventType == E.eventType }.map { (try EventEnvelope<E>(record: $0), $0) }
    }

    /// Waits until `count` events of type `E` exist (or 20 s pass), then returns them.
    func waitForEvents<E: SpoolEvent>(_ type: E.Type, count: Int) async throws -> [EventEnvelope<E>] {
        _ = await eventually { ((try? await self.events(type).count) ?? 0) >= count }
        return try await events(type).map(\.event)
    }

    /// Waits until the participant handled `count` events in all.
    func waitUntilHandled(_ count: Int) async -> Bool {
        await eventually { self.participant.statistics.handled + self.participant.statistics.duplicates >= count }
    }

    func stop() async throws {
        let running = task.withLock { $0 }
        running.cancel()
        try await running.value
        client.close()
        await broker.stop()
    }
}
