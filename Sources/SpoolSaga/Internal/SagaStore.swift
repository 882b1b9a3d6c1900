import Foundation
import GRDB
import Spool
import SpoolWire

/// The kit's tables in the service's database and every statement on them.
///
/// - `spool_inbox`: ids of handled events (primary key), so a redelivery has no second effect;
///   entries older than the inbox retention are deleted.
/// - `spool_outbox`: events to publish, in insertion order; `sent_at` is set once the broker
///   acknowledged them, and sent rows are deleted after the retention.
/// - `spool_timeouts`: events to emit at `due_at` (ms since the epoch), one per saga and type.
/// - `spool_replies`: the reply emitted for each handled command, sent again for a repeated one.
/// - `spool_sagas` and `spool_saga_history`: an orchestrator's instances (``SagaInstances``).
/// - `spool_supervised`: a supervisor's sagas, the last failure of each and the record to
///   retry (``SupervisedSagas``); their history is in `spool_saga_history` too.
enum SagaStore {
    /// Creates the tables (idempotent; versioned through GRDB's migrator, next to the service's own migrations).
    static func migrate(_ writer: any DatabaseWriter) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("spool-saga-v1") { db in
            try db.execute(sql: """
                CREATE TABLE spool_inbox (
                    event_id TEXT PRIMARY KEY NOT NULL,
                    event_type TEXT NOT NULL,
                    origin TEXT NOT NULL,
                    handled_at INTEGER NOT NULL
                );
                CREATE INDEX spool_inbox_handled ON spool_inbox(handled_at);
                CREATE TABLE spool_outbox (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_id TEXT NOT NULL,
                    topic TEXT NOT NULL,
                    key BLOB,
                    value BLOB NOT NULL,
                    headers BLOB NOT NULL,
                    timestamp INTEGER NOT NULL,
                    sent_at INTEGER
                );
                CREATE INDEX spool_outbox_unsent ON spool_outbox(id) WHERE sent_at IS NULL;
                CREATE TABLE spool_timeouts (
                    correlation_id TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    topic TEXT NOT NULL,
                    key BLOB,
                    value BLOB NOT NULL,
                    headers BLOB NOT NULL,
                    due_at INTEGER NOT NULL,
                    PRIMARY KEY (correlation_id, event_type)
                );
                CREATE INDEX spool_timeouts_due ON spool_timeouts(due_at);
                """)
        }
        migrator.registerMigration("spool-saga-v2-replies") { db in
            try db.execute(sql: """
                CREATE TABLE spool_replies (
                    command_id TEXT PRIMARY KEY NOT NULL,
                    event_id TEXT NOT NULL,
                    topic TEXT NOT NULL,
                    key BLOB,
                    value BLOB NOT NULL,
                    headers BLOB NOT NULL,
                    timestamp INTEGER NOT NULL,
                    handled_at INTEGER NOT NULL
                );
                CREATE INDEX spool_replies_handled ON spool_replies(handled_at);
                """)
        }
        migrator.registerMigration("spool-saga-v3-orchestrator") { db in
            try db.execute(sql: """
                CREATE TABLE spool_sagas (
                    id TEXT PRIMARY KEY NOT NULL,
                    definition TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    undoing INTEGER NOT NULL,
                    step INTEGER NOT NULL,
                    attempt INTEGER NOT NULL,
                    command_id TEXT,
                    data BLOB NOT NULL,
                    deadline INTEGER,
                    reason TEXT,
                    completed_steps TEXT NOT NULL,
                    compensated_steps TEXT NOT NULL,
                    started_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                CREATE INDEX spool_sagas_deadline ON spool_sagas(deadline) WHERE deadline IS NOT NULL;
                CREATE TABLE spool_saga_history (
                    saga_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    time INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    step TEXT,
                    change TEXT NOT NULL,
                    PRIMARY KEY (saga_id, seq)
                );
                CREATE TABLE spool_supervised (
                    saga_id TEXT PRIMARY KEY NOT NULL,
                    flow TEXT NOT NULL,
                    state TEXT NOT NULL,
                    service TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    dead_letter INTEGER NOT NULL,
                    event_id TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    reason TEXT,
                    compensations TEXT NOT NULL,
                    record_topic TEXT NOT NULL,
                    record_key BLOB,
                    record_value BLOB NOT NULL,
                    record_headers BLOB NOT NULL,
                    started_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                """)
        }
        try migrator.migrate(writer)
    }

    // MARK: Inbox

    /// Records inbox entry `id` (an event id) as handled; false if it was already (a redelivery).
    static func recordHandled(_ db: Database, id: String, type: String, origin: String) throws -> Bool {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO spool_inbox (event_id, event_type, origin, handled_at) VALUES (?, ?, ?, ?)")
            .execute(arguments: [id, type, origin, EventMetadata.now()])
        return db.changesCount == 1
    }

    // MARK: Outbox

    static func insertOutbox(_ db: Database, record: OutgoingRecord, topic: String, role: EventRole, eventID: String) throws {
        let headers = record.headers + [RecordHeader(name: EventHeaderName.role, string: role.rawValue)]
        try db.cachedStatement(sql: "INSERT INTO spool_outbox (event_id, topic, key, value, headers, timestamp) VALUES (?, ?, ?, ?, ?, ?)")
            .execute(arguments: [eventID, topic, record.key.map { Data($0) }, Data(record.value), encode(headers),
                                   record.timestamp ?? EventMetadata.now()])
    }

    /// A row waiting to be published.
    struct PendingRow: Sendable {
        var id: Int64
        var topic: String
        var record: OutgoingRecord
    }

    static func pending(_ db: Database, limit: Int) throws -> [PendingRow] {
        try Row.fetchAll(db.cachedStatement(sql: "SELECT id, topic, key, value, headers, timestamp FROM spool_outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?"),
                         arguments: [limit]).map { row in
            let key: Data? = row["key"]
            let value: Data = row["value"]
            let headers: Data = row["headers"]
            return PendingRow(id: row["id"], topic: row["topic"],
                              record: OutgoingRecord(key: key.map { Array($0) }, value: Array(value), headers: try decode(headers),
                                                     timestamp: row["timestamp"]))
        }
    }

    /// How many rows are unsent (through the index of unsent rows).
    static func unsentCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db.cachedStatement(sql: "SELECT COUNT(*) FROM spool_outbox WHERE sent_at IS NULL")) ?? 0
    }

    /// Marks every unsent row up to `lastID` sent: the rows of a ``pending(_:limit:)`` read
    /// (which returns the unsent rows with the lowest ids, and ids only grow, so no unsent row
    /// below its last one appeared since), in one statement.
    static func markSent(_ db: Database, through lastID: Int64, at time: Int64) throws {
        try db.cachedStatement(sql: "UPDATE spool_outbox SET sent_at = ? WHERE sent_at IS NULL AND id <= ?").execute(arguments: [time, lastID])
    }

    /// Deletes outbox rows sent before `sentBefore` and inbox entries handled before `handledBefore`.
    static func prune(_ db: Database, sentBefore: Int64, handledBefore: Int64) throws {
        try db.execute(sql: "DELETE FROM spool_outbox WHERE sent_at IS NOT NULL AND sent_at < ?", arguments: [sentBefore])
        try db.execute(sql: "DELETE FROM spool_inbox WHERE handled_at < ?", arguments: [handledBefore])
        try db.execute(sql: "DELETE FROM spool_replies WHERE handled_at < ?", arguments: [handledBefore])
    }

    // MARK: Replies to commands

    /// Keeps the outbox row just inserted as the reply to `commandID`, for a repeated command.
    static func keepLastOutboxRowAsReply(_ db: Database, commandID: String) throws {
        try db.cachedStatement(sql: """
            INSERT INTO spool_replies (command_id, event_id, topic, key, value, headers, timestamp, handled_at)
            SELECT ?, event_id, topic, key, value, headers, timestamp, ? FROM spool_outbox WHERE id = ?
            """).execute(arguments: [commandID, EventMetadata.now(), db.lastInsertedRowID])
    }

    /// Puts the reply kept for `commandID` into the outbox again, the same bytes and event id;
    /// false if none is kept (the command was handled before replies were kept, or too long ago).
    static func repeatReply(_ db: Database, commandID: String) throws -> Bool {
        try db.cachedStatement(sql: """
            INSERT INTO spool_outbox (event_id, topic, key, value, headers, timestamp)
            SELECT event_id, topic, key, value, headers, timestamp FROM spool_replies WHERE command_id = ?
            """).execute(arguments: [commandID])
        return db.changesCount == 1
    }

    // MARK: Timeouts

    /// Schedules `record` for `topic` at `due`, replacing the one of the same saga and type;
    /// `role` (default timeout) is added to its headers.
    static func scheduleTimeout(_ db: Database, record: OutgoingRecord, topic: String, eventID: String, correlationID: String,
                                eventType: String, due: Int64, role: EventRole? = .timeout) throws {
        let headers = record.headers + (role.map { [RecordHeader(name: EventHeaderName.role, string: $0.rawValue)] } ?? [])
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO spool_timeouts (correlation_id, event_type, event_id, topic, key, value, headers, due_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [correlationID, eventType, eventID, topic, record.key.map { Data($0) }, Data(record.value), encode(headers), due])
    }

    static func cancelTimeout(_ db: Database, correlationID: String, eventType: String) throws -> Bool {
        try db.cachedStatement(sql: "DELETE FROM spool_timeouts WHERE correlation_id = ? AND event_type = ?").execute(arguments: [correlationID, eventType])
        return db.changesCount > 0
    }

    /// Whether a timeout is due at `now`.
    static func hasDueTimeouts(_ db: Database, now: Int64) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM spool_timeouts WHERE due_at <= ?)"), arguments: [now]) ?? false
    }

    /// Moves the timeouts due at `now` into the outbox, stamped with the firing time; returns how many.
    static func fireDueTimeouts(_ db: Database, now: Int64) throws -> Int {
        let due = try Row.fetchAll(db, sql: "SELECT event_id, topic, key, value, headers FROM spool_timeouts WHERE due_at <= ? ORDER BY due_at",
                                   arguments: [now])
        let firedTime = RecordHeader(name: EventHeaderName.time, string: EventMetadata.formatTime(now))
        for row in due {
            let stored: Data = row["headers"]
            let headers = try decode(stored).map { $0.name == EventHeaderName.time ? firedTime : $0 }
            try db.execute(sql: "INSERT INTO spool_outbox (event_id, topic, key, value, headers, timestamp) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [row["event_id"] as String, row["topic"] as String, row["key"] as Data?, row["value"] as Data,
                                       encode(headers), now])
        }
        try db.execute(sql: "DELETE FROM spool_timeouts WHERE due_at <= ?", arguments: [now])
        return due.count
    }

    // MARK: Header encoding

    /// Rows written before headers were stored in the wire's encoding hold a JSON array of these.
    private struct JSONHeader: Codable {
        var name: String
        var value: Data
    }

    /// Headers as stored: a 0 byte, then the wire's encoding (a u32 count, then per header a
    /// u16-length name and a u32-length value). Rows of earlier versions hold a JSON array,
    /// which starts with "[", and are still read.
    static func encode(_ headers: [RecordHeader]) -> Data {
        var writer = WireWriter(capacity: 5 + headers.reduce(0) { $0 + 6 + $1.name.utf8.count + $1.value.count })
        writer.write(UInt8(0))
        writer.write(array: headers) { writer, header in
            writer.write(header.name)
            writer.write(bytes: header.value)
        }
        return Data(writer.bytes)
    }

    static func decode(_ data: Data) throws -> [RecordHeader] {
        guard data.first == 0 else {
            return try JSONDecoder().decode([JSONHeader].self, from: data).map { RecordHeader(name: $0.name, value: Array($0.value)) }
        }
        return try data.withUnsafeBytes { buffer throws(WireError) in
            var reader = WireReader(UnsafeRawBufferPointer(rebasing: buffer[1...]))
            var headers: [RecordHeader] = []
            for _ in 0..<(try reader.readCount(minimumElementSize: 6)) {
                headers.append(RecordHeader(name: try reader.readString(), value: try reader.readBytes()))
            }
            try reader.expectEnd("the stored headers")
            return headers
        }
    }
}
