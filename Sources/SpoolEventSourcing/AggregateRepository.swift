import Foundation
import Logging
import Spool
import Synchronization
import SpoolWire

/// Loads and saves aggregates of one type as their events, on a Spool topic keyed by aggregate
/// id. A save is a conditional append (the expected version is the offset of the last event the
/// caller saw), so of two writers that loaded the same version exactly one saves; the other gets
/// ``SpoolError/Code/keyConflict`` and reloads (``update(_:attempts:_:)`` does that for it).
///
/// With `snapshotEvery`, ``update(_:attempts:_:)`` also stores the state every that many events on
/// ``snapshotTopic`` (keyed by id, the version in a header), and ``load(_:)`` starts from the last
/// snapshot and applies only the events after it. A snapshot is an optimisation: a missing or
/// older one only costs reading more events.
///
/// Each event record carries the saga kit's envelope headers (event id, type ``Aggregate/eventType``,
/// the aggregate id as correlation id, time, source); its value is the event's JSON.
public final class AggregateRepository<State: Aggregate>: Sendable {
    /// The client reads go through.
    public let client: SpoolClient
    /// The producer saves go through (idempotent: a retried save is never stored twice).
    public let producer: Producer
    /// Store a snapshot once this many events were applied since the last one; nil: never.
    public let snapshotEvery: Int?
    /// The `spool-source` header of the events written.
    public let source: String
    private let logger: Logger
    private let snapshotTopicCreated = Atomic<Bool>(false)

    /// The topic of the snapshots: `<Aggregate.topic>.snapshots`, created with `cleanup.policy:
    /// compact` (the log cleaner keeps each aggregate's last snapshot).
    public static var snapshotTopic: String { State.topic + ".snapshots" }
    /// The header of a snapshot record holding the version it was taken at.
    public static var snapshotVersionHeader: String { "spool-snapshot-version" }

    public init(client: SpoolClient, producer: Producer, source: String, snapshotEvery: Int? = nil,
                logger: Logger = Logger(label: "spool.event-sourcing")) {
        self.client = client
        self.producer = producer
        self.source = source
        self.snapshotEvery = snapshotEvery.map { max($0, 1) }
        self.logger = logger
    }

    // MARK: Loading

    /// The aggregate's current state: its last snapshot (with `snapshotEvery`), then every
    /// event after it, read by key (the cost grows with the aggregate's events, not the topic's).
    /// An aggregate without events comes back as `State()` with version nil.
    public func load(_ id: String) async throws(SpoolError) -> Versioned<State> {
        var start = Versioned(state: State(), version: nil, eventsSinceSnapshot: 0)
        if snapshotEvery != nil {
            try await createSnapshotTopic()
            if let snapshot = try await client.lastRecord(ofKey: Self.key(id), in: Self.snapshotTopic) {
                start = try Self.decodeSnapshot(snapshot, id: id)
            }
        }
        let history = try await client.records(ofKey: Self.key(id), in: State.topic, from: start.version.map { $0 + 1 } ?? 0)
        return try Self.fold(history.records, onto: start, id: id)
    }

    /// The state the aggregate had at `point` (after its events up to an offset, or up to a
    /// time): what keeping the events is for. Always replays from the first event.
    public func load(_ id: String, asOf point: HistoryPoint) async throws(SpoolError) -> Versioned<State> {
        let history = try await client.records(ofKey: Self.key(id), in: State.topic)
        let kept = history.records.prefix { record in
            switch point {
            case .offset(let offset): record.offset <= offset
            case .time(let milliseconds): record.timestamp <= milliseconds
            }
        }
        return try Self.fold(Array(kept), onto: Versioned(state: State(), version: nil, eventsSinceSnapshot: 0), id: id)
    }

    // MARK: Saving

    /// Appends `events` to aggregate `id` only if its last event is at `expectedVersion` (nil:
    /// it has none yet), as one batch: all or nothing. Returns the new version (the offset of
    /// the last event written). Throws ``SpoolError/Code/keyConflict`` when another writer saved
    /// first (`details["lastOffset"]`: the current version, -1 for none); nothing was written.
    @discardableResult
    public func save(_ id: String, _ events: [State.Event], expectedVersion: Int64?) async throws(SpoolError) -> Int64 {
        guard !events.isEmpty else { throw SpoolError(.invalidArgument, "saving aggregate \(id) needs at least one event") }
        let records = try events.map { event throws(SpoolError) in try record(of: event, id: id) }
        let result: PublishResult
        do {
            result = try await producer.send(to: State.topic, key: Self.key(id), records: records, ifLastOffsetIs: expectedVersion)
        } catch {
            guard error.code == .keyConflict else { throw error }
            let current = error.details["lastOffset"] ?? -1
            throw SpoolError(.keyConflict, "aggregate \(id) in \(State.topic) is at version \(current < 0 ? "none" : String(current)), the save expected \(expectedVersion.map(String.init) ?? "none"): reload it and decide again",
                             details: error.details, cause: error)
        }
        guard result.baseOffset >= 0 else {
            // A retry answered as stored earlier, offset unknown: the aggregate's last event tells.
            return try await client.records(ofKey: Self.key(id), in: State.topic, from: (expectedVersion ?? -1) + 1).lastOffset ?? -1
        }
        return result.baseOffset + Int64(result.count) - 1
    }

    /// Loads aggregate `id`, asks `decide` for the events a command causes in that state, and
    /// saves them expecting the loaded version; on a conflict it loads again and asks again, up
    /// to `attempts` times (then the last conflict is thrown). Returns the state after the
    /// events and its version (unchanged when `decide` returns none). Errors of `decide` (a
    /// command the state refuses) are thrown as they are, nothing saved. With `snapshotEvery`,
    /// stores a snapshot when one is due (a failed snapshot is logged, not thrown: the events are saved).
    @discardableResult
    public func update(_ id: String, attempts: Int = 10, _ decide: (State) throws -> [State.Event]) async throws -> Versioned<State> {
        var conflict: SpoolError?
        for _ in 0..<max(attempts, 1) {
            var current = try await load(id)
            let events = try decide(current.state)
            guard !events.isEmpty else { return current }
            let version: Int64
            do {
                version = try await save(id, events, expectedVersion: current.version)
            } catch {
                guard error.code == .keyConflict else { throw error }
                conflict = error
                continue
            }
            for event in events { current.state.apply(event) }
            current.version = version
            current.eventsSinceSnapshot += events.count
            if let snapshotEvery, current.eventsSinceSnapshot >= snapshotEvery {
                do {
                    try await storeSnapshot(current, id: id)
                    current.eventsSinceSnapshot = 0
                } catch {
                    logger.warning("could not store a snapshot; the next load reads more events", metadata: [
                        "aggregate": "\(id)", "topic": "\(Self.snapshotTopic)", "error": "\(error.message)",
                    ])
                }
            }
            return current
        }
        throw conflict ?? SpoolError(.keyConflict, "aggregate \(id) kept changing")
    }

    // MARK: Records

    private static func key(_ id: String) -> [UInt8] { Array(id.utf8) }

    /// JSON with sorted keys, so one state or event always encodes to the same bytes.
    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }

    private func record(of event: State.Event, id: String) throws(SpoolError) -> OutgoingRecord {
        let metadata = EventMetadata(eventType: State.eventType, correlationID: id, source: source)
        do {
            return OutgoingRecord(key: Self.key(id), value: Array(try Self.encoder.encode(event)), headers: metadata.headers, timestamp: metadata.time)
        } catch {
            throw SpoolError(.invalidArgument, "an event of aggregate \(id) does not encode: \(error)")
        }
    }

    /// `start` with the events of `records` applied in order.
    private static func fold(_ records: [SpoolRecord], onto start: Versioned<State>, id: String) throws(SpoolError) -> Versioned<State> {
        var result = start
        let decoder = JSONDecoder()
        for record in records {
            do {
                result.state.apply(try decoder.decode(State.Event.self, from: Data(record.value)))
            } catch {
                throw SpoolError(.invalidArgument, "event \(record.topic)/\(record.partition)@\(record.offset) of aggregate \(id) does not decode: \(error)")
            }
            result.version = record.offset
            result.eventsSinceSnapshot += 1
        }
        return result
    }

    /// Creates the snapshot topic compacted (only each aggregate's last snapshot is read), once
    /// per repository, before its first use; one that exists is kept as it is.
    private func createSnapshotTopic() async throws(SpoolError) {
        guard !snapshotTopicCreated.load(ordering: .acquiring) else { return }
        var creation: SpoolError?
        do {
            try await client.createTopic(Self.snapshotTopic, settings: ["cleanup.policy": "compact"])
        } catch {
            creation = error
        }
        if let creation, creation.code != .topicAlreadyExists { throw creation }
        snapshotTopicCreated.store(true, ordering: .releasing)
    }

    private func storeSnapshot(_ current: Versioned<State>, id: String) async throws(SpoolError) {
        guard let version = current.version else { return }
        try await createSnapshotTopic()
        let value: Data
        do {
            value = try Self.encoder.encode(current.state)
        } catch {
            throw SpoolError(.invalidArgument, "the state of aggregate \(id) does not encode: \(error)")
        }
        try await client.publish(to: Self.snapshotTopic, key: Self.key(id), value: Array(value),
                                 headers: [RecordHeader(name: Self.snapshotVersionHeader, string: String(version))])
    }

    private static func decodeSnapshot(_ record: SpoolRecord, id: String) throws(SpoolError) -> Versioned<State> {
        guard let header = record.headers.last(where: { $0.name == snapshotVersionHeader }),
              let version = Int64(String(decoding: header.value, as: UTF8.self)) else {
            throw SpoolError(.invalidArgument, "snapshot \(record.topic)@\(record.offset) of aggregate \(id) has no \(snapshotVersionHeader) header")
        }
        do {
            return Versioned(state: try JSONDecoder().decode(State.self, from: Data(record.value)), version: version, eventsSinceSnapshot: 0)
        } catch {
            throw SpoolError(.invalidArgument, "snapshot \(record.topic)@\(record.offset) of aggregate \(id) does not decode: \(error)")
        }
    }
}
