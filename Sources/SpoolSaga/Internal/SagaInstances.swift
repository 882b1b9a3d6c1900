import Foundation
import GRDB
import Spool

/// One orchestrated saga as stored in `spool_sagas`, changed only inside the transaction that
/// also writes the outbox rows of the commands it sends.
struct InstanceRow: Sendable {
    var id: String
    var definition: String
    var version: Int
    var state: SagaState
    /// True while steps are being undone (compensating, or parked while compensating).
    var undoing: Bool
    /// The step whose command (or compensation) is out, or was last.
    var step: Int
    /// Sends of the current command so far.
    var attempt: Int
    /// The event id of the command awaiting its reply; nil when nothing is awaited.
    var commandID: String?
    var data: Data
    /// When the awaited reply is overdue (ms since the epoch).
    var deadline: Int64?
    var reason: String?
    var completedSteps: [String]
    var compensatedSteps: [String]
    var startedAt: Int64
}

/// Statements on `spool_sagas` and `spool_saga_history`.
enum SagaInstances {
    static func insert(_ db: Database, _ row: InstanceRow) throws {
        try db.execute(sql: """
            INSERT INTO spool_sagas (id, definition, version, state, undoing, step, attempt, command_id, data, deadline, reason,
                                     completed_steps, compensated_steps, started_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [row.id, row.definition, row.version, row.state.rawValue, row.undoing, row.step, row.attempt, row.commandID,
                             row.data, row.deadline, row.reason, try json(row.completedSteps), try json(row.compensatedSteps),
                             row.startedAt, EventMetadata.now()])
    }

    static func update(_ db: Database, _ row: InstanceRow) throws {
        try db.cachedStatement(sql: """
            UPDATE spool_sagas SET state = ?, undoing = ?, step = ?, attempt = ?, command_id = ?, data = ?, deadline = ?, reason = ?,
                                   completed_steps = ?, compensated_steps = ?, updated_at = ?
            WHERE id = ?
            """).execute(arguments: [row.state.rawValue, row.undoing, row.step, row.attempt, row.commandID, row.data, row.deadline,
                                     row.reason, try json(row.completedSteps), try json(row.compensatedSteps), EventMetadata.now(), row.id])
    }

    static func exists(_ db: Database, id: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM spool_sagas WHERE id = ?)"), arguments: [id]) ?? false
    }

    static func load(_ db: Database, id: String) throws -> InstanceRow? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM spool_sagas WHERE id = ?"), arguments: [id]) else { return nil }
        return InstanceRow(id: row["id"], definition: row["definition"], version: row["version"],
                           state: try state(row["state"], of: id, in: "spool_sagas"), undoing: row["undoing"],
                           step: row["step"], attempt: row["attempt"], commandID: row["command_id"], data: row["data"],
                           deadline: row["deadline"], reason: row["reason"], completedSteps: try strings(row["completed_steps"]),
                           compensatedSteps: try strings(row["compensated_steps"]), startedAt: row["started_at"])
    }

    /// Ids of the instances whose awaited reply is overdue at `now`, oldest deadline first.
    static func overdue(_ db: Database, now: Int64, limit: Int) throws -> [String] {
        try String.fetchAll(db.cachedStatement(sql: "SELECT id FROM spool_sagas WHERE deadline <= ? ORDER BY deadline LIMIT ?"),
                            arguments: [now, limit])
    }

    static func appendHistory(_ db: Database, sagaID: String, state: SagaState, step: String?, change: String, time: Int64) throws {
        try db.cachedStatement(sql: """
            INSERT INTO spool_saga_history (saga_id, seq, time, state, step, change)
            VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM spool_saga_history WHERE saga_id = ?1), ?2, ?3, ?4, ?5)
            """).execute(arguments: [sagaID, time, state.rawValue, step, change])
    }

    static func history(_ db: Database, sagaID: String) throws -> [SagaInstance.Change] {
        try Row.fetchAll(db, sql: "SELECT time, state, step, change FROM spool_saga_history WHERE saga_id = ? ORDER BY seq",
                         arguments: [sagaID]).map { row in
            SagaInstance.Change(time: row["time"], state: try state(row["state"], of: sagaID, in: "spool_saga_history"), step: row["step"],
                                change: row["change"])
        }
    }

    /// A stored state; throws for one this version does not know.
    static func state(_ text: String, of sagaID: String, in table: String) throws -> SagaState {
        guard let state = SagaState(rawValue: text) else { throw SpoolError(.invalidArgument, "saga \(sagaID): unknown state '\(text)' in \(table)") }
        return state
    }

    /// Step or command names as stored: a JSON array.
    static func json(_ names: [String]) throws -> String {
        String(decoding: try JSONEncoder().encode(names), as: UTF8.self)
    }

    static func strings(_ text: String) throws -> [String] {
        try JSONDecoder().decode([String].self, from: Data(text.utf8))
    }
}
