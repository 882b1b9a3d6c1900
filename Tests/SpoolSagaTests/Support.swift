import Foundation
import GRDB
import Spool
import SpoolSaga
import SpoolServer
import SpoolTesting
import Synchronization

struct ItemRequested: SpoolEvent {
    static let eventType = "item-requested"
    var item: String
    var quantity: Int
}

struct ItemReserved: SpoolEvent {
    static let eventType = "item-reserved"
    var item: String
    var quantity: Int
}

struct ItemUnavailable: SpoolEvent {
    static let eventType = "item-unavailable"
    var item: String
    var reason: String
}

struct ChargeFailed: SpoolEvent {
    static let eventType = "charge-failed"
    var item: String
}

struct ItemReleased: SpoolEvent {
    static let eventType = "item-released"
    var item: String
    var quantity: Int
}

struct ReplyOverdue: SpoolEvent {
    static let eventType = "reply-overdue"
    var note: String
}

/// A stock-like step on a `shelf(item, quantity)` table and `held(saga, item, quantity)` reservations.
struct ReserveItem: CompensableStep {
    func process(_ event: EventEnvelope<ItemRequested>, in context: SagaContext) throws -> StepOutcome<ItemReserved, ItemUnavailable> {
        let request = event.payload
        let available = try Int.fetchOne(context.db, sql: "SELECT quantity FROM shelf WHERE item = ?", arguments: [request.item]) ?? 0
        guard available >= request.quantity else {
            return .failure(ItemUnavailable(item: request.item, reason: "only \(available) left"))
        }
        try context.db.execute(sql: "UPDATE shelf SET quantity = quantity - ? WHERE item = ?", arguments: [request.quantity, request.item])
        try context.db.execute(sql: "INSERT INTO held (saga, item, quantity) VALUES (?, ?, ?)",
                               arguments: [event.metadata.correlationID, request.item, request.quantity])
        return .success(ItemReserved(item: request.item, quantity: request.quantity))
    }

    func compensate(_ event: EventEnvelope<ChargeFailed>, in context: SagaContext) throws -> ItemReleased? {
        guard let row = try Row.fetchOne(context.db, sql: "SELECT item, quantity FROM held WHERE saga = ?", arguments: [event.metadata.correlationID]) else {
            return nil
        }
        let item: String = row["item"]
        let quantity: Int = row["quantity"]
        try context.db.execute(sql: "UPDATE shelf SET quantity = quantity + ? WHERE item = ?", arguments: [quantity, item])
        try context.db.execute(sql: "DELETE FROM held WHERE saga = ?", arguments: [event.metadata.correlationID])
        return ItemReleased(item: item, quantity: quantity)
    }
}

/// A fresh SQLite database (WAL) in `directory` with a shelf of `stock` units of "apple".
func makeShelfDatabase(in directory: TemporaryDirectory, name: String = "shelf.sqlite", stock: Int = 10) throws -> DatabasePool {
    let pool = try DatabasePool(path: directory.appending(name))
    try pool.write { db in
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS shelf (item TEXT PRIMARY KEY, quantity INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS held (saga TEXT PRIMARY KEY, item TEXT NOT NULL, quantity INTEGER NOT NULL);
            INSERT OR IGNORE INTO shelf VALUES ('apple', \(stock));
            """)
    }
    return pool
}

/// Runs `participant` in a background task until `stop()`.
struct RunningParticipant {
    let participant: SagaParticipant
    let task: Task<Void, any Error>

    init(_ participant: SagaParticipant) {
        self.participant = participant
        task = Task { try await participant.run() }
    }

    func stop() async throws {
        task.cancel()
        try await task.value
    }
}

/// A fast retry policy for tests: 3 attempts, 10 ms apart.
let quickRetries = SagaConfiguration(retry: RetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(20)),
                                     pollInterval: .milliseconds(50),
                                     consumer: ConsumerConfiguration(sessionTimeout: .seconds(2)))

extension SpoolClient {
    /// Every record of every partition of `topic` (nothing if the topic does not exist yet).
    func allRecords(of topic: String) async throws -> [SpoolRecord] {
        guard let info = try await topics().first(where: { $0.name == topic }) else { return [] }
        var records: [SpoolRecord] = []
        for partition in info.partitions { records += try await readToEnd(of: topic, partition: partition.partition) }
        return records
    }

    /// The events of `topic`, decoded as `E`.
    func events<E: SpoolEvent>(_ type: E.Type) async throws -> [EventEnvelope<E>] {
        try await allRecords(of: E.topic).map { try EventEnvelope<E>(record: $0) }
    }
}

/// Counts the commits that handled events: those inserting into the kit's inbox (seen with
/// GRDB's transaction observer).
final class CommitCounter: TransactionObserver, Sendable {
    private let state = Mutex((commits: 0, inboxChanged: false))
    var count: Int { state.withLock { $0.commits } }
    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
        if case .insert(let table) = eventKind { return table == "spool_inbox" }
        return false
    }
    func databaseDidChange(with event: DatabaseEvent) { state.withLock { $0.inboxChanged = true } }
    func databaseDidCommit(_ db: Database) {
        state.withLock { state in
            if state.inboxChanged { state.commits += 1 }
            state.inboxChanged = false
        }
    }
    func databaseDidRollback(_ db: Database) { state.withLock { $0.inboxChanged = false } }
}

/// An orchestrator's command to the shelf: take `quantity` apples.
struct TakeItems: SagaCommand {
    typealias Reply = ItemsTaken
    static let eventType = "take-items"
    static let topic = "shelf.commands"
    var quantity: Int
}

/// The shelf's reply to ``TakeItems``, on the orchestrator's reply topic.
struct ItemsTaken: SpoolEvent {
    static let eventType = "items-taken"
    static let topic = "orchestrator.replies"
    var left: Int
}
