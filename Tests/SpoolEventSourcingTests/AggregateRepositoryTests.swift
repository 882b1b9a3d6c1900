import Foundation
import Spool
import SpoolEventSourcing
import SpoolTesting
import Testing

/// A bank account, event-sourced.
struct Account: Aggregate {
    enum Event: Codable, Sendable, Equatable {
        case opened(owner: String)
        case deposited(Int)
        case withdrew(Int)
    }

    struct Overdrawn: Error {}

    static let topic = "accounts"
    var owner = ""
    var balance = 0
    var isOpen = false

    mutating func apply(_ event: Event) {
        switch event {
        case .opened(let owner):
            self.owner = owner
            isOpen = true
        case .deposited(let amount): balance += amount
        case .withdrew(let amount): balance -= amount
        }
    }

    /// The command "withdraw": refused when it would overdraw.
    func withdraw(_ amount: Int) throws -> [Event] {
        guard balance >= amount else { throw Overdrawn() }
        return [.withdrew(amount)]
    }
}

@Suite struct AggregateRepositoryTests {
    static func withRepository(snapshotEvery: Int? = nil, _ body: (AggregateRepository<Account>, SpoolClient) async throws -> Void) async throws {
        let broker = try InProcessBroker()
        let client = try await broker.makeClient()
        let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .zero))
        do {
            try await body(AggregateRepository(client: client, producer: producer, source: "tests", snapshotEvery: snapshotEvery), client)
        } catch {
            try? await producer.close()
            client.close()
            await broker.stop()
            throw error
        }
        try await producer.close()
        client.close()
        await broker.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func savesWithTheExpectedVersionAndLoadsTheFoldedState() async throws {
        try await Self.withRepository { accounts, _ in
            let empty = try await accounts.load("acc-1")
            #expect(empty.version == nil && !empty.state.isOpen)
            let opened = try await accounts.save("acc-1", [.opened(owner: "ada"), .deposited(100)], expectedVersion: nil)
            let loaded = try await accounts.load("acc-1")
            #expect(loaded.version == opened && loaded.state.balance == 100 && loaded.state.owner == "ada")
            // A writer holding the old version loses and learns the current one; nothing is written.
            let stale = await #expect(throws: SpoolError.self) { try await accounts.save("acc-1", [.withdrew(50)], expectedVersion: nil) }
            #expect(stale?.code == .keyConflict && stale?.details["lastOffset"] == opened)
            #expect(stale?.message.contains("acc-1") == true)
            #expect(try await accounts.load("acc-1").state.balance == 100)
            // Other aggregates in between do not move this one's version.
            try await accounts.save("acc-2", [.opened(owner: "bob")], expectedVersion: nil)
            let withdrawn = try await accounts.save("acc-1", [.withdrew(30)], expectedVersion: opened)
            #expect(try await accounts.load("acc-1").state.balance == 70)
            // The past: as of an offset and as of a time.
            #expect(try await accounts.load("acc-1", asOf: .offset(opened)).state.balance == 100)
            #expect(try await accounts.load("acc-1", asOf: .offset(opened - 1)).state == Account(owner: "ada", balance: 0, isOpen: true))
            #expect(try await accounts.load("acc-1", asOf: .time(milliseconds: 0)).version == nil)
            #expect(try await accounts.load("acc-1", asOf: .time(milliseconds: .max)).version == withdrawn)
        }
    }

    /// Concurrent commands on one account through `update`: conflicts are reloaded and decided
    /// again, so every deposit counts once and a withdrawal is refused exactly when it would overdraw.
    @Test(.timeLimit(.minutes(1)))
    func concurrentUpdatesRetryOnConflictAndNeverLoseAnEvent() async throws {
        try await Self.withRepository { accounts, _ in
            try await accounts.save("acc-9", [.opened(owner: "cy")], expectedVersion: nil)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        for _ in 0..<25 { try await accounts.update("acc-9", attempts: 100) { _ in [.deposited(1)] } }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await accounts.load("acc-9").state.balance == 100)
            await #expect(throws: Account.Overdrawn.self) { try await accounts.update("acc-9") { try $0.withdraw(101) } }
            let after = try await accounts.update("acc-9") { try $0.withdraw(100) }
            #expect(after.state.balance == 0)
            #expect(try await accounts.load("acc-9").state.balance == 0)
        }
    }

    /// With snapshots every 10 events, a load starts from the last snapshot and reads only the
    /// events after it; the state is the same as a full replay.
    @Test(.timeLimit(.minutes(1)))
    func snapshotsShortenLoadsAndGiveTheSameState() async throws {
        try await Self.withRepository(snapshotEvery: 10) { accounts, client in
            try await accounts.save("acc-5", [.opened(owner: "di")], expectedVersion: nil)
            for amount in 1...24 { try await accounts.update("acc-5") { _ in [.deposited(amount)] } }
            let snapshots = try await client.records(ofKey: Array("acc-5".utf8), in: AggregateRepository<Account>.snapshotTopic).records
            #expect(snapshots.count == 2, "a snapshot after every 10 events")
            let topic = try await client.describeTopic(AggregateRepository<Account>.snapshotTopic)
            #expect(topic.settings["cleanup.policy"] == "compact", "the snapshots live on a compacted topic")
            let loaded = try await accounts.load("acc-5")
            #expect(loaded.state.balance == (1...24).reduce(0, +))
            #expect(loaded.eventsSinceSnapshot == 5, "only the events after the last snapshot were applied")
            let replayed = try await accounts.load("acc-5", asOf: .offset(.max))
            #expect(replayed.state == loaded.state && replayed.version == loaded.version)
        }
    }
}

extension Account: Equatable {}
