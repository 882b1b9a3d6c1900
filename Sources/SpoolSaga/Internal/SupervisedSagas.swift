import Foundation
import GRDB
import Spool

/// One supervised saga as stored in `spool_supervised`: its state and its last failure, with
/// the record that reported it.
struct SupervisedRow: Sendable {
    var sagaID: String
    var flow: String
    var state: SagaState
    /// The last failure: who, which event, dead letter or failure event, and the event's id.
    var service: String
    var eventType: String
    var isDeadLetter: Bool
    var eventID: String
    /// Retries of that failure so far.
    var attempt: Int
    var reason: String?
    /// The commands sent to compensate, by event type.
    var compensations: [String]
    /// The failure's record and topic: the failure event, or the dead-lettered event as first
    /// published (its topic, without the dead-letter headers), which a retry publishes again.
    var failed: (topic: String, record: OutgoingRecord)
    var startedAt: Int64
}

/// Statements on `spool_supervised`.
enum SupervisedSagas {
    static func save(_ db: Database, _ row: SupervisedRow) throws {
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO spool_supervised (saga_id, flow, state, service, event_type, dead_letter, event_id, attempt, reason,
                                                     compensations, record_topic, record_key, record_value, record_headers,
                                                     started_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                row.sagaID, row.flow, row.state.rawValue, row.service, row.eventType, row.isDeadLetter, row.eventID, row.attempt, row.reason,
                try SagaInstances.json(row.compensations), row.failed.topic,
                row.failed.record.key.map { Data($0) }, Data(row.failed.record.value), SagaStore.encode(row.failed.record.headers),
                row.startedAt, EventMetadata.now(),
            ])
    }

    static func load(_ db: Database, sagaID: String) throws -> SupervisedRow? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM spool_supervised WHERE saga_id = ?"), arguments: [sagaID]) else {
            return nil
        }
        let key: Data? = row["record_key"]
        let value: Data = row["record_value"]
        let headers: Data = row["record_headers"]
        let failed = OutgoingRecord(key: key.map { Array($0) }, value: Array(value), headers: try SagaStore.decode(headers))
        return SupervisedRow(sagaID: sagaID, flow: row["flow"], state: try SagaInstances.state(row["state"], of: sagaID, in: "spool_supervised"),
                             service: row["service"], eventType: row["event_type"], isDeadLetter: row["dead_letter"], eventID: row["event_id"],
                             attempt: row["attempt"], reason: row["reason"], compensations: try SagaInstances.strings(row["compensations"]),
                             failed: (row["record_topic"], failed), startedAt: row["started_at"])
    }
}
