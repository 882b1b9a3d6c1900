import Foundation
import GRDB
import Spool
import Synchronization

/// A read model fed by a topic's events (the query side of CQRS): a catch-up subscription that
/// applies each record to a SQLite database and stores its position in the same transaction, so
/// each event is applied exactly once across crashes and restarts. It reads every partition of
/// the topic from its stored position (0 for a new projection), page by page (one transaction
/// per page), then waits for new records (long poll).
///
/// Its positions live in the table `spool_projection_positions` (created on first use, next to
/// the read model's own tables). ``rebuild(reset:)`` empties the read model and the positions in
/// one transaction, so the next ``run()`` replays the topic from offset 0.
public final class Projection: Sendable {
    /// Names the projection's positions; two projections of one database need two names.
    public let name: String
    /// The topic whose records are applied.
    public let topic: String
    /// The database holding the read model and the positions.
    public let database: any DatabaseWriter
    private let client: SpoolClient
    private let apply: @Sendable (Database, SpoolRecord) throws -> Void
    private let maxWait: Duration
    private let progress = Mutex<[Int32: (next: Int64, end: Int64)]>([:])

    /// A projection of `topic` into `database`; `apply` changes the read model for one record
    /// (inside the transaction that also stores the position: throwing rolls both back, and
    /// ``run()`` ends with the error). Creates the positions table if it is missing.
    public init(name: String, topic: String, client: SpoolClient, database: any DatabaseWriter, maxWait: Duration = .seconds(1),
                apply: @escaping @Sendable (Database, SpoolRecord) throws -> Void) throws {
        self.name = name
        self.topic = topic
        self.client = client
        self.database = database
        self.maxWait = maxWait
        self.apply = apply
        try database.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS spool_projection_positions (
                    projection TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
                    PRIMARY KEY (projection, topic, partition))
                """)
        }
    }

    /// Applies the topic's records from the stored positions on, and goes on applying new ones,
    /// until the task is cancelled (then returns) or `apply`, the database or the broker fails
    /// for good (then throws). A broker that restarts is waited for.
    public func run() async throws {
        let partitions = try await client.topics([topic]).first?.partitions.count ?? 0
        guard partitions > 0 else { throw SpoolError(.unknownTopic, "projection \(name): topic '\(topic)' does not exist") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for partition in 0..<Int32(partitions) {
                group.addTask { try await self.follow(partition: partition) }
            }
            try await group.waitForAll()
        }
    }

    /// Records not yet applied, summed over the partitions, as of each partition's last read
    /// (nil before every partition was read once).
    public var lag: Int64? {
        progress.withLock { progress in
            progress.isEmpty ? nil : progress.values.reduce(0) { $0 + max($1.end - $1.next, 0) }
        }
    }

    /// True once the record at `offset` of `partition` is applied.
    public func hasApplied(offset: Int64, partition: Int32 = 0) throws -> Bool {
        try database.read { db in try Self.position(db, name: name, topic: topic, partition: partition) > offset }
    }

    /// Empties the read model (`reset`, e.g. deleting its rows) and forgets the positions, in one
    /// transaction: the next ``run()`` applies the topic again from offset 0. Call it while the
    /// projection is not running.
    public func rebuild(reset: (Database) throws -> Void) throws {
        try database.write { db in
            try reset(db)
            try db.execute(sql: "DELETE FROM spool_projection_positions WHERE projection = ? AND topic = ?", arguments: [name, topic])
        }
        progress.withLock { $0 = [:] }
    }

    // MARK: Following one partition

    private func follow(partition: Int32) async throws {
        var next = try await database.read { [name, topic] db in try Self.position(db, name: name, topic: topic, partition: partition) }
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            var fetched: FetchedRecords?
            var failure: SpoolError?
            do {
                fetched = try await client.fetch(from: topic, partition: partition, offset: next, maxWait: maxWait)
            } catch {
                failure = error
            }
            guard let page = fetched else {
                guard let failure, !Task.isCancelled, failure.code != .cancelled else { return }
                // A restarting broker is waited for; anything else (data deleted by retention: the
                // read model would miss events) ends the projection.
                guard failure.isRetriable || failure.code == .timedOut else { throw failure }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
                continue
            }
            backoff = .milliseconds(50)
            if page.nextOffset > next {
                let after = page.nextOffset
                try await database.write { [name, topic, apply] db in
                    for record in page.records { try apply(db, record) }
                    try db.execute(sql: """
                        INSERT INTO spool_projection_positions (projection, topic, partition, next_offset) VALUES (?, ?, ?, ?)
                        ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = excluded.next_offset
                        """, arguments: [name, topic, partition, after])
                }
                next = after
            }
            progress.withLock { $0[partition] = (next, page.logEndOffset) }
        }
    }

    private static func position(_ db: Database, name: String, topic: String, partition: Int32) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT next_offset FROM spool_projection_positions WHERE projection = ? AND topic = ? AND partition = ?",
                           arguments: [name, topic, partition]) ?? 0
    }
}
