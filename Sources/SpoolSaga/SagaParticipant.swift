import Foundation
import GRDB
import Logging
import Spool
import Synchronization

/// One service's part in choreography sagas: typed handlers and steps run against the service's
/// own SQLite database with an inbox and an outbox, so that **each event has its effect exactly
/// once although delivery is at least once**.
///
/// ```swift
/// let stock = try SagaParticipant(name: "stock", client: client, database: dbPool)
/// stock.add(ReserveStock())                               // order-created → stock-decreased | stock-failed
/// stock.on(OrderCancelled.self) { event, context in ... } // a plain handler
/// try await stock.run()                                   // until the task is cancelled
/// ```
///
/// How it holds:
/// - **Inbox.** A record is handled in one database transaction that first inserts its event id
///   into `spool_inbox`; a redelivered event (after a crash, a rebalance, a replay) finds its id
///   there and is skipped. The consumer offset is committed only after that transaction. Records
///   fetched already share one transaction (up to ``SagaConfiguration/maxRecordsPerTransaction``),
///   each in a savepoint of it, so a busy service pays one commit for many events.
/// - **Outbox.** Events emitted by a handler (or by ``transaction(_:)``) are rows of the same
///   transaction; a relay publishes them through the idempotent ``Producer`` in insertion order
///   and marks them sent. A crash between publishing and marking publishes them again: receivers'
///   inboxes drop the copy (same event id).
/// - **Retries and dead letters.** A handler that throws is retried by ``RetryPolicy`` (its
///   partition waits meanwhile, keeping order); then, or at once for a record that is not a
///   decodable event or a ``PermanentFailure``, the record goes to `<topic>.dlq` with its key,
///   value and headers and the `spool-dlq-*` headers (``DeadLetterHeaderName``): the reason, the
///   attempts, the group and where it came from. `spool replay <topic>.dlq --to <topic>` puts it
///   back after a fix; it is then handled like any redelivery.
/// - **Timeouts.** ``SagaContext/scheduleTimeout(_:after:correlationID:)`` stores the event in
///   `spool_timeouts`; the relay moves due ones to the outbox (checked every
///   ``SagaConfiguration/pollInterval``), so timeouts survive restarts and fire late rather than never.
/// - **Metrics.** What it handles, retries, dead-letters and publishes, its handler durations and
///   its outbox depth are recorded through swift-metrics (`spool_saga_*`, docs/http-api.md), with
///   its name as the `group` label. The service bootstraps the backend (`MetricsSystem.bootstrap`)
///   before it creates its participants; without one nothing is recorded.
///
/// One process per database: the relay assumes it is the only one publishing the outbox.
public final class SagaParticipant: Sendable {
    /// The service's name: its consumer group and the `spool-source` of what it emits.
    public let name: String
    /// The client the participant consumes and publishes through.
    public let client: SpoolClient
    /// The service's database (state, inbox, outbox, timeouts).
    public let database: any DatabaseWriter
    /// The settings in force.
    public let configuration: SagaConfiguration

    private let logger: Logger
    private let registrations = Mutex<[Subscription: Registration]>([:])
    private let counters = Mutex(SagaStatistics())
    private let metrics: SagaMetrics
    /// Wakes the running relay (nil while not running).
    private let doorbell = Mutex<AsyncStream<Void>.Continuation?>(nil)

    /// A handler as stored (under its ``Subscription``): the type-erased call, and what a
    /// redelivered record (already in the inbox) does: nothing, or, for a command, its reply again.
    private struct Registration: Sendable {
        var handle: @Sendable (EventMetadata, [UInt8], SagaContext) throws -> Void
        var redelivered: (@Sendable (SagaContext) throws -> Void)?
        /// The inbox entry of a record, when it is not the event id (a dead letter's, which
        /// may come again for the same event).
        var inboxID: (@Sendable (SpoolRecord, EventMetadata) -> String)?
    }

    /// What a handler is registered for: an event type on one topic.
    private struct Subscription: Hashable, Sendable {
        var eventType: String
        var topic: String
    }

    /// Creates the kit's tables in `database` if needed (`spool_inbox`, `spool_outbox`,
    /// `spool_timeouts`, through GRDB's migrator). Throws ``SpoolError/Code/invalidArgument`` for a
    /// bad name (names follow the topic-name rules), or the database's error.
    public init(name: String, client: SpoolClient, database: any DatabaseWriter, configuration: SagaConfiguration = SagaConfiguration(),
                logger: Logger = Logger(label: "spool.saga")) throws {
        try SpoolClient.checkTopicName(name)
        self.name = name
        self.client = client
        self.database = database
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "service"] = "\(name)"
        self.logger = logger
        metrics = SagaMetrics(group: name)
        try SagaStore.migrate(database)
    }

    /// What the participant did since it was created.
    public var statistics: SagaStatistics { counters.withLock { $0 } }

    // MARK: Registration (before run)

    /// Handles events of type `E` (consumed from `E.topic`) with `handler`, inside the local
    /// transaction described in ``SagaParticipant``. One handler per event type; register
    /// before ``run()``.
    public func on<E: SpoolEvent>(_ type: E.Type, _ handler: @escaping @Sendable (EventEnvelope<E>, SagaContext) throws -> Void) {
        register(E.self, redelivered: nil, handler)
    }

    private func register<E: SpoolEvent>(_ type: E.Type, redelivered: (@Sendable (SagaContext) throws -> Void)?,
                                         _ handler: @escaping @Sendable (EventEnvelope<E>, SagaContext) throws -> Void) {
        let registration = Registration(handle: { metadata, value, context in
            let envelope: EventEnvelope<E>
            do throws(SpoolError) {
                envelope = try EventEnvelope<E>(metadata: metadata, value: value)
            } catch {
                throw PermanentFailure(error.message)
            }
            try handler(envelope, context)
        }, redelivered: redelivered)
        add(registration, for: Subscription(eventType: E.eventType, topic: E.topic))
    }

    /// Handles records of event type `eventType` on `topic` with `handle`, which decodes the
    /// payload itself: for parts of the kit that dispatch on more than the type (the
    /// orchestrator's replies, the supervisor's reports). `inboxID` names a record's inbox entry
    /// when the event id does not (default: the event id).
    func on(eventType: String, topic: String, inboxID: (@Sendable (SpoolRecord, EventMetadata) -> String)? = nil,
            _ handle: @escaping @Sendable (EventMetadata, [UInt8], SagaContext) throws -> Void) {
        add(Registration(handle: handle, redelivered: nil, inboxID: inboxID), for: Subscription(eventType: eventType, topic: topic))
    }

    private func add(_ registration: Registration, for subscription: Subscription) {
        registrations.withLock { registrations in
            precondition(registrations[subscription] == nil, "\(name): a second handler for '\(subscription.eventType)' on \(subscription.topic)")
            registrations[subscription] = registration
        }
    }

    /// Handles commands of type `C` (consumed from `C.topic`): `handler` runs in the local
    /// transaction described in ``SagaParticipant`` and returns the reply, which is emitted in
    /// the same transaction (to `C.Reply.topic`) and kept with the inbox entry. A command
    /// delivered again (same event id: an orchestrator resending after a timeout or a crash) has
    /// no second effect and gets the same reply again, the same bytes and event id, so the
    /// orchestrator's inbox drops it if it had it already. Kept replies are forgotten with the
    /// inbox (``SagaConfiguration/inboxRetention``). Register before ``run()``.
    public func handle<C: SagaCommand>(_ type: C.Type, _ handler: @escaping @Sendable (EventEnvelope<C>, SagaContext) throws -> C.Reply) {
        register(C.self, redelivered: { context in _ = try context.repeatReply() }) { command, context in
            try context.reply(try handler(command, context))
        }
    }

    /// Handles commands of type `C` whose reply may come later, after work that must not run
    /// inside a transaction (a call to an external system): `handler` runs like ``handle(_:_:)``'s
    /// and returns the reply to send now, or nil to send it later with
    /// ``SagaContext/reply(_:toCommand:correlationID:)`` from a ``transaction(_:)`` of this
    /// participant. Either way the command is answered once and its reply kept: the same command
    /// delivered again gets that reply again, or nothing while it has none yet (the orchestrator
    /// waits, resending on its timeout). Register before ``run()``.
    public func accept<C: SagaCommand>(_ type: C.Type, _ handler: @escaping @Sendable (EventEnvelope<C>, SagaContext) throws -> C.Reply?) {
        register(C.self, redelivered: { context in _ = try context.repeatReply() }) { command, context in
            if let reply = try handler(command, context) { try context.reply(reply) }
        }
    }

    /// Runs `step` on its trigger and emits its success or failure event.
    public func add<Step: SagaStep>(_ step: Step) {
        registerProcess(step)
    }

    /// Runs `step` on its trigger, emitting its success or failure event, and its compensation
    /// on `Step.Compensation`, emitting `Step.Compensated` when something was undone.
    public func add<Step: CompensableStep>(_ step: Step) {
        registerProcess(step)
        on(Step.Compensation.self) { event, context in
            if let compensated = try step.compensate(event, in: context) {
                try context.emit(compensated, role: .compensation)
            }
        }
    }

    private func registerProcess<Step: SagaStep>(_ step: Step) {
        on(Step.Trigger.self) { event, context in
            switch try step.process(event, in: context) {
            case .success(let success): try context.emit(success, role: .success)
            case .failure(let failure): try context.emit(failure, role: .failure)
            }
        }
    }

    // MARK: Local transactions

    /// Runs `body` in one write transaction of the service's database; events it emits (with an
    /// explicit correlation id: there is no trigger) are published after the commit. This is how
    /// a saga starts: store the new state and its first event together.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (SagaContext) throws -> T) async throws -> T {
        let (result, emitted) = try await database.write { [name] db in
            let context = SagaContext(db: db, trigger: nil, service: name)
            let result = try body(context)
            return (result, context.emittedCount)
        }
        committed(emitted: emitted)
        return result
    }

    // MARK: Running

    /// Consumes the registered events as group `name`, publishes the outbox and fires timeouts,
    /// until the task is cancelled; then stops after the record in hand (a record whose retries
    /// were interrupted is not committed and comes again), leaves the group and returns. Rows
    /// still in the outbox are published at the next start. Throws if consuming cannot start or
    /// stops for good (a bad topic name, an unknown topic with auto-creation off): the
    /// ``SpoolError``, after the same orderly stop. Run it once at a time.
    public func run() async throws {
        let producer = try Producer(client: client, configuration: configuration.producer, logger: logger)
        let topics = registrations.withLock { Set($0.keys.map(\.topic)) }.sorted()
        // Every series starts at zero, so that a first dead letter is an increase.
        for topic in topics { _ = metrics.consumed(topic) }
        let consumer = try topics.isEmpty ? nil
            : Consumer(client: client, group: name, topics: topics, configuration: configuration.consumer, logger: logger)
        let (bell, ringer) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        doorbell.withLock { current in
            precondition(current == nil, "\(name): run() is already running")
            current = ringer
        }
        logger.info("saga participant started", metadata: ["topics": "\(topics.joined(separator: ","))"])
        let failure = await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask { await self.ringEveryPoll(); return nil }
            group.addTask { await self.relay(bell, producer: producer); return nil }
            if let consumer { group.addTask { await self.consume(consumer, producer: producer) } }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        doorbell.withLock { $0 = nil }
        ringer.finish()
        // Shutdown work must not inherit the cancellation that started it.
        await Task { try? await producer.close() }.value
        logger.info("saga participant stopped")
        if let failure { throw failure }
    }

    private func ringRelay() {
        _ = doorbell.withLock { $0?.yield() }
    }

    /// A transaction that emitted `emitted` events committed: they are in the outbox; wakes the relay.
    private func committed(emitted: Int) {
        guard emitted > 0 else { return }
        metrics.addedToOutbox(emitted)
        ringRelay()
    }

    /// Rings the relay every poll interval, for timeouts and rows left by an earlier run.
    private func ringEveryPoll() async {
        while !Task.isCancelled {
            ringRelay()
            try? await Task.sleep(for: configuration.pollInterval)
        }
    }

    /// Handles records until cancelled; returns the error that stopped consuming for good, if any.
    private func consume(_ consumer: Consumer, producer: Producer) async -> (any Error)? {
        var records = consumer.makeAsyncIterator()
        var interrupted = false
        var failure: (any Error)?
        while !Task.isCancelled {
            do {
                guard let batch = try await records.nextBatch(upTo: configuration.maxRecordsPerTransaction) else { break }
                guard !Task.isCancelled, await handle(batch, producer: producer) else {
                    interrupted = true
                    break
                }
            } catch is CancellationError {
                break
            } catch {
                logger.error("consuming failed; the participant stops", metadata: ["error": "\(error)"])
                failure = error
                break
            }
        }
        await Task { await consumer.close(countingLastRecord: !interrupted) }.value
        return failure
    }

    /// Handles `batch` in order: the longest run of records that apply at once in one
    /// transaction, then the record that stopped the run (not an event, or its handler failed)
    /// alone with retries and dead letters, and so on. Returns false if cancelled before the
    /// batch was done with (none of it may count as processed; what was committed is in the inbox).
    private func handle(_ batch: ArraySlice<SpoolRecord>, producer: Producer) async -> Bool {
        var rest = batch
        while !rest.isEmpty {
            let (applied, failure) = await applyTogether(rest)
            rest = rest.dropFirst(applied)
            guard let record = rest.first else { break }
            guard await handle(record, producer: producer, failedOnce: failure) else { return false }
            rest = rest.dropFirst()
        }
        return true
    }

    /// Applies the longest prefix of `records` that are events handled here, or skipped here,
    /// whose handlers succeed at the first attempt: one write transaction, each record in a
    /// savepoint. Returns how many records it applied, and the error of the handler (or of the
    /// transaction) that stopped it; a record that is not a readable event stops it too, without one.
    private func applyTogether(_ records: ArraySlice<SpoolRecord>) async -> (applied: Int, failure: (any Error)?) {
        let handlers = registrations.withLock { $0 }
        do {
            let (applied, fresh, duplicates, emitted, failure) = try await database.write { [name, logger, metrics] db in
                var (applied, duplicates, emitted) = (0, 0, 0)
                var fresh: [SagaMetrics.Consumed] = []  // the handles of each event handled
                var failure: (any Error)?
                for record in records {
                    guard let metadata = try? EventMetadata(headers: record.headers) else { break }
                    let origin = "\(record.topic)/\(record.partition)@\(record.offset)"
                    guard let registration = handlers[Subscription(eventType: metadata.eventType, topic: record.topic)] else {
                        logger.debug("no handler for this event type here; skipped", metadata: ["event": "\(metadata.eventType)", "at": "\(origin)"])
                        applied += 1
                        continue
                    }
                    do {
                        try db.inSavepoint {
                            let handles = metrics.consumed(record.topic)
                            let (isFresh, emittedHere) = try Self.apply(record, metadata, registration, origin: origin, in: db, service: name,
                                                                        handles: handles)
                            if isFresh { fresh.append(handles) } else { duplicates += 1 }
                            emitted += emittedHere
                            return .commit
                        }
                    } catch {
                        failure = error
                        break
                    }
                    applied += 1
                }
                return (applied, fresh, duplicates, emitted, failure)
            }
            committed(emitted: emitted)
            for handles in fresh { handles.handled.increment() }
            counters.withLock { $0.handled += fresh.count; $0.duplicates += duplicates }
            return (applied, failure)
        } catch {
            return (0, error)  // the transaction failed as a whole: nothing of it was applied
        }
    }

    /// One record's part of a local transaction: its inbox entry, then its handler (timed into
    /// `handles`, failed runs too), or for a record the inbox has already what a redelivery does
    /// (nothing, or a command's reply again). Returns whether it was new, and how many events it emitted.
    private static func apply(_ record: SpoolRecord, _ metadata: EventMetadata, _ registration: Registration, origin: String,
                              in db: Database, service: String, handles: SagaMetrics.Consumed) throws -> (fresh: Bool, emitted: Int) {
        let context = SagaContext(db: db, trigger: metadata, triggerRecord: record, service: service)
        let started = ContinuousClock.now
        guard try SagaStore.recordHandled(db, id: registration.inboxID?(record, metadata) ?? metadata.eventID, type: metadata.eventType,
                                          origin: origin) else {
            try registration.redelivered?(context)
            return (false, context.emittedCount)
        }
        defer { handles.duration.record(duration: ContinuousClock.now - started) }
        try registration.handle(metadata, record.value, context)
        return (true, context.emittedCount)
    }

    /// Handles one record: inbox check, handler, retries, dead letter; `failedOnce` is the error
    /// of an attempt made already (in ``applyTogether(_:)``). Returns false if cancelled before
    /// the record was done with (it must not count as processed).
    private func handle(_ record: SpoolRecord, producer: Producer, failedOnce: (any Error)?) async -> Bool {
        let origin = "\(record.topic)/\(record.partition)@\(record.offset)"
        let metadata: EventMetadata
        do throws(SpoolError) {
            guard let decoded = try EventMetadata(headers: record.headers) else {
                return await deadLetter(record, origin: origin, reason: "not an event: no \(EventHeaderName.eventID) or \(EventHeaderName.eventType) header",
                                        attempts: 1, producer: producer)
            }
            metadata = decoded
        } catch {
            return await deadLetter(record, origin: origin, reason: error.message, attempts: 1, producer: producer)
        }
        guard let registration = registrations.withLock({ $0[Subscription(eventType: metadata.eventType, topic: record.topic)] }) else {
            logger.debug("no handler for this event type here; skipped", metadata: ["event": "\(metadata.eventType)", "at": "\(origin)"])
            return true
        }
        let handles = metrics.consumed(record.topic)
        var failure = failedOnce
        var attempt = failure == nil ? 0 : 1
        while true {
            if let error = failure {
                let permanent = error is PermanentFailure
                guard !permanent, attempt < configuration.retry.maxAttempts else {
                    return await deadLetter(record, origin: origin, reason: "\(error)", attempts: attempt, producer: producer)
                }
                counters.withLock { $0.retries += 1 }
                handles.retries.increment()
                logger.warning("handler failed; retrying", metadata: ["event": "\(metadata.eventType)", "id": "\(metadata.eventID)",
                                                                      "attempt": "\(attempt)", "error": "\(error)"])
                do {
                    try await Task.sleep(for: configuration.retry.backoff(after: attempt))
                } catch {
                    return false
                }
            }
            attempt += 1
            do {
                let (fresh, emitted) = try await database.write { [name] db in
                    try Self.apply(record, metadata, registration, origin: origin, in: db, service: name, handles: handles)
                }
                committed(emitted: emitted)
                if fresh { handles.handled.increment() }
                counters.withLock { fresh ? ($0.handled += 1) : ($0.duplicates += 1) }
                return true
            } catch {
                failure = error
            }
        }
    }

    /// Publishes `record` to `<topic>.dlq` with the dead-letter headers, retrying while the broker
    /// is unreachable (a dead letter must not be lost). False if cancelled first.
    private func deadLetter(_ record: SpoolRecord, origin: String, reason: String, attempts: Int, producer: Producer) async -> Bool {
        let line = reason.split(whereSeparator: \.isNewline).joined(separator: " ")
        let headers = record.headers.filter { !$0.name.hasPrefix(DeadLetterHeaderName.prefix) } + [
            RecordHeader(name: DeadLetterHeaderName.error, string: line),
            RecordHeader(name: DeadLetterHeaderName.attempts, string: String(attempts)),
            RecordHeader(name: DeadLetterHeaderName.group, string: name),
            RecordHeader(name: DeadLetterHeaderName.origin, string: origin),
            RecordHeader(name: DeadLetterHeaderName.time, string: EventMetadata.formatTime(EventMetadata.now())),
        ]
        let topic = "\(record.topic).dlq"
        var wait = configuration.retry.initialBackoff
        while !Task.isCancelled {
            do throws(SpoolError) {
                try await producer.send(to: topic, key: record.key, value: record.value, headers: headers, timestamp: record.timestamp)
                counters.withLock { $0.deadLettered += 1 }
                metrics.consumed(record.topic).deadLetters.increment()
                logger.error("record dead-lettered", metadata: ["from": "\(origin)", "to": "\(topic)", "attempts": "\(attempts)", "reason": "\(line)"])
                return true
            } catch {
                logger.warning("could not dead-letter yet; retrying", metadata: ["to": "\(topic)", "error": "\(error)"])
            }
            try? await Task.sleep(for: wait)
            wait = Swift.min(wait * 2, configuration.retry.maxBackoff)
        }
        return false
    }

    // MARK: Relay

    private func relay(_ bell: AsyncStream<Void>, producer: Producer) async {
        // Pruning runs at the first pass and then every minute (sooner for shorter retentions).
        let pruneEvery = Swift.min(.seconds(60), configuration.sentRetention, configuration.inboxRetention)
        var lastPrune: ContinuousClock.Instant?
        for await _ in bell {
            guard !Task.isCancelled else { return }
            do {
                try await relayPass(producer)
                if lastPrune.map({ ContinuousClock.now - $0 >= pruneEvery }) ?? true {
                    let now = EventMetadata.now()
                    let (sent, handled) = (now - configuration.sentRetention.wholeMilliseconds, now - configuration.inboxRetention.wholeMilliseconds)
                    try await database.write { db in try SagaStore.prune(db, sentBefore: sent, handledBefore: handled) }
                    lastPrune = .now
                }
            } catch where !Task.isCancelled {
                logger.warning("outbox relay failed; retrying at the next poll", metadata: ["error": "\(error)"])
            } catch {
                return  // stopping: the rows stay in the outbox for the next run
            }
        }
    }

    /// Unsent outbox rows the relay publishes per round.
    private static let relayBatchLimit = 1000

    /// Fires due timeouts, then publishes unsent outbox rows in order until none is left. The
    /// first look is one read (whether a timeout fell due, and the unsent rows), so a pass rung
    /// by a transaction that emitted reaches the producer after a single database round trip;
    /// a round that found fewer rows than a full batch ends the pass without reading again
    /// (rows committed since then ring the bell, which holds one ring for the next pass).
    private func relayPass(_ producer: Producer) async throws {
        let now = EventMetadata.now()
        var (due, rows) = try await database.read { db in (try SagaStore.hasDueTimeouts(db, now: now), try self.pendingRows(db)) }
        if due {
            let fired = try await database.write { db in try SagaStore.fireDueTimeouts(db, now: now) }
            counters.withLock { $0.timeoutsFired += fired }
            rows = try await database.read { db in try self.pendingRows(db) }
        }
        while !rows.isEmpty, !Task.isCancelled {
            for row in rows {
                try await producer.enqueue(to: row.topic, key: row.record.key, value: row.record.value, headers: row.record.headers,
                                           timestamp: row.record.timestamp)
            }
            try await producer.flush()
            let (lastID, sentAt) = (rows[rows.count - 1].id, EventMetadata.now())
            try await database.write { db in try SagaStore.markSent(db, through: lastID, at: sentAt) }
            counters.withLock { $0.published += rows.count }
            metrics.published(rows)
            guard rows.count == Self.relayBatchLimit else { return }
            rows = try await database.read { db in try self.pendingRows(db) }
        }
    }

    /// The unsent rows the relay publishes next (a batch at most), recording the outbox depth
    /// they show (counted when they are a full batch).
    private func pendingRows(_ db: Database) throws -> [SagaStore.PendingRow] {
        let rows = try SagaStore.pending(db, limit: Self.relayBatchLimit)
        metrics.outboxCounted(rows.count < Self.relayBatchLimit ? rows.count : try SagaStore.unsentCount(db))
        return rows
    }
}

/// Counts of what a ``SagaParticipant`` did since it was created.
public struct SagaStatistics: Sendable, Hashable {
    /// Events handled (their transaction committed).
    public var handled = 0
    /// Redelivered events skipped because the inbox had them.
    public var duplicates = 0
    /// Handler attempts that failed and were retried.
    public var retries = 0
    /// Records sent to a dead-letter topic.
    public var deadLettered = 0
    /// Outbox rows published.
    public var published = 0
    /// Timeouts that fell due and were moved to the outbox.
    public var timeoutsFired = 0
}
