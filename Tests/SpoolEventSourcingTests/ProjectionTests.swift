import Foundation
import GRDB
import Spool
import SpoolEventSourcing
import SpoolTesting
import Testing

/// A read model of the accounts: one row per account with its balance and event count.
@Suite struct ProjectionTests {
    static func makeDatabase(_ directory: TemporaryDirectory, _ name: String) throws -> DatabaseQueue {
        let database = try DatabaseQueue(path: directory.appending(name))
        try database.write { db in
            try db.execute(sql: "CREATE TABLE balances (id TEXT PRIMARY KEY, balance INTEGER NOT NULL, events INTEGER NOT NULL)")
        }
        return database
    }

    static func projection(_ client: SpoolClient, _ database: DatabaseQueue) throws -> Projection {
        try Projection(name: "balances", topic: Account.topic, client: client, database: database, maxWait: .milliseconds(100)) { db, record in
            let id = String(decoding: record.key ?? [], as: UTF8.self)
            let delta = switch try JSONDecoder().decode(Account.Event.self, from: Data(record.value)) {
            case .opened: 0
            case .deposited(let amount): amount
            case .withdrew(let amount): -amount
            }
            try db.execute(sql: """
                INSERT INTO balances (id, balance, events) VALUES (?, ?, 1)
                ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance, events = events + 1
                """, arguments: [id, delta])
        }
    }

    static func rows(_ database: DatabaseQueue) throws -> [Row] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT id, balance, events FROM balances ORDER BY id") }
    }

    /// The live projection follows the writes (stopped and restarted in the middle: no event is
    /// applied twice, none is missed), reports its lag, and a second database rebuilt from
    /// offset 0 equals it row for row.
    @Test(.timeLimit(.minutes(1)))
    func aProjectionAppliesEachEventOnceAndARebuildEqualsIt() async throws {
        let directory = try TemporaryDirectory(prefix: "spool-projection")
        let broker = try InProcessBroker()
        defer { Task { await broker.stop() } }
        let client = try await broker.makeClient()
        defer { client.close() }
        try await client.createTopic(Account.topic, partitions: 3)
        let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .zero))
        let accounts = AggregateRepository<Account>(client: client, producer: producer, source: "tests")
        let live = try Self.makeDatabase(directory, "live.sqlite")
        let projection = try Self.projection(client, live)

        for number in 0..<20 { try await accounts.save("acc-\(number)", [.opened(owner: "o\(number)"), .deposited(number)], expectedVersion: nil) }
        var running = Task { try await projection.run() }
        #expect(await eventually { (try? Self.rows(live).count) == 20 && projection.lag == 0 })
        running.cancel()
        try await running.value
        // Written while the projection is stopped; it catches up from its stored positions.
        for number in 0..<20 { try await accounts.update("acc-\(number)") { _ in [.deposited(100), .withdrew(1)] } }
        #expect(projection.lag == 0, "the lag is as of the last read")
        running = Task { try await projection.run() }
        #expect(await eventually { (try? Self.rows(live).allSatisfy { $0["events"] as Int == 4 }) == true })
        running.cancel()
        try await running.value
        var balances: [String: Int] = [:]
        for row in try Self.rows(live) { balances[row["id"]] = row["balance"] }
        #expect(balances == Dictionary(uniqueKeysWithValues: (0..<20).map { ("acc-\($0)", $0 + 99) }))

        // A fresh read model rebuilt from offset 0 equals the live one.
        let rebuilt = try Self.makeDatabase(directory, "rebuilt.sqlite")
        let fresh = try Self.projection(client, rebuilt)
        try fresh.rebuild { db in try db.execute(sql: "DELETE FROM balances") }
        let rebuilding = Task { try await fresh.run() }
        #expect(await eventually { (try? Self.rows(rebuilt).count) == 20 && fresh.lag == 0 })
        rebuilding.cancel()
        try await rebuilding.value
        #expect(try Self.rows(rebuilt) == Self.rows(live))
        // The live one rebuilt in place gives the same rows again.
        try projection.rebuild { db in try db.execute(sql: "DELETE FROM balances") }
        #expect(try Self.rows(live).isEmpty)
        let again = Task { try await projection.run() }
        #expect(await eventually { (try? Self.rows(live)) == (try? Self.rows(rebuilt)) })
        again.cancel()
        try await again.value
        try await producer.close()
    }
}
