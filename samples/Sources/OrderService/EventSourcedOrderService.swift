import Foundation
import GRDB
import Logging
import SagaEvents
import ServiceKit
import Spool
import SpoolEventSourcing
import SpoolSaga
import Synchronization

/// The order service event-sourced (`--mode event-sourced`): the choreography's order service,
/// whose orders are ``OrderAggregate``s, their events on `order-events` keyed by order id, and
/// whose reads come from a read model (CQRS).
///
/// - **Commands.** `POST /orders` and the saga's incoming events (`stock-decreased`,
///   `payment-completed`, `delivery-scheduled`, the failures, the order timeout) become aggregate
///   events through ``AggregateRepository/update(_:attempts:_:)``: load the order, decide, save
///   with the loaded version as the expected one (a conditional append per key), reload and
///   decide again on a conflict. Incoming events are consumed at least once (group `order`); the
///   aggregate's state makes each decision idempotent (a fact it has already, or any fact after
///   the order ended, causes no event), so an event delivered twice gives one aggregate event.
/// - **The saga's events: the event store is the outbox.** A relay follows `order-events` and
///   publishes what the other services consume (`order-created`, `order-completed`,
///   `order-cancelled`, as in the choreography), each with an event id derived from the
///   aggregate event's place (`order-events/<partition>@<offset>`) and its time, so the same
///   aggregate event always gives the same record. It stores its position per partition in
///   SQLite after publishing, in the transaction that also schedules (placed) or cancels (ended)
///   the order timeout. A crash between publishing and storing publishes those events again with
///   the same ids, and the receivers' inboxes drop them: each order's saga events have their
///   effect once without a separate outbox table, because the aggregate events are already
///   stored durably, in order, and replayable.
/// - **Reads.** A ``Projection`` of `order-events` keeps the table `orders_view` (an order's row
///   and its version, the offset of its last event), its position stored in the transaction
///   that applies each page: reads are eventually consistent, and `GET /orders/{id}?min-version=N`
///   waits until the view caught up with the caller's own write (see ``order(_:minVersion:)``).
public final class EventSourcedOrderService: OrderBook {
    /// The read model's table.
    public static let viewTable = "orders_view"
    /// The projection's name in `spool_projection_positions`.
    public static let projectionName = "orders-view"
    /// The saga's events that become aggregate events.
    static let incoming: [any SpoolEvent.Type] = [
        StockDecreased.self, StockFailed.self, PaymentCompleted.self, PaymentFailed.self,
        DeliveryScheduled.self, DeliveryFailed.self, OrderTimedOut.self,
    ]

    /// The saga participant: the database and the client, and the relay that fires order timeouts.
    public let participant: SagaParticipant
    /// The orders' events.
    public let repository: AggregateRepository<OrderAggregate>
    /// The read model `orders_view`.
    public let projection: Projection
    /// Prices by product id (from the seed).
    public let prices: [String: Int]
    /// How long an order waits for its payment and delivery before it is cancelled.
    public let orderTimeout: Duration
    /// How long `order(_:minVersion:)` waits for the view to catch up.
    public let readTimeout: Duration
    private let producer: Producer
    private let logger: Logger
    /// The relay's memory of the orders it saw placed and not yet ended (what their saga events
    /// need); an order it has not seen placed since the start is loaded as of the event.
    private let openOrders = Mutex<[String: OrderCreated]>([:])

    /// A service on `participant` selling the seed's products. The database must have been
    /// prepared with ``OrderService/prepare(_:seed:)``.
    public init(participant: SagaParticipant, seed: Seed, orderTimeout: Duration = .seconds(30), readTimeout: Duration = .seconds(5),
                logger: Logger = Logger(label: "order")) throws {
        self.participant = participant
        self.prices = Dictionary(uniqueKeysWithValues: seed.products.map { ($0.id, $0.price) })
        self.orderTimeout = orderTimeout
        self.readTimeout = readTimeout
        self.logger = logger
        producer = try Producer(client: participant.client, configuration: ProducerConfiguration(linger: .zero), logger: logger)
        repository = AggregateRepository(client: participant.client, producer: producer, source: OrderService.name, logger: logger)
        projection = try Projection(name: Self.projectionName, topic: OrderAggregate.topic, client: participant.client,
                                    database: participant.database, apply: Self.project)
    }

    // MARK: Commands

    /// Places an order: its `placed` event, saved as the first of a new aggregate. Returns it
    /// PENDING with the version written. Throws ``ServiceError`` for a bad request, as
    /// ``OrderService/place(userID:productID:quantity:coupon:)``.
    public func place(userID: String, productID: String, quantity: Int, coupon: String? = nil) async throws -> Order {
        let created = try OrderService.newOrder(userID: userID, productID: productID, quantity: quantity, coupon: coupon, prices: prices)
        let placedAt = EventMetadata.now()
        let saved = try await repository.update(created.orderID) { $0.place(created, at: placedAt) }
        return Order(saved.state, version: saved.version)
    }

    /// The aggregate events `record` (an incoming saga event) causes: the order it concerns and
    /// the decision to ask its state; nil for a type not handled here.
    func decision(for record: SpoolRecord) throws(SpoolError) -> (orderID: String, decide: (OrderAggregate) -> [OrderAggregate.Event])? {
        guard let type = try EventMetadata(headers: record.headers)?.eventType else {
            throw SpoolError(.invalidArgument, "not an event: no \(EventHeaderName.eventID) or \(EventHeaderName.eventType) header")
        }
        switch type {
        case StockDecreased.eventType:
            let event = try EventEnvelope<StockDecreased>(record: record).payload
            return (event.orderID, { $0.reserveStock() })
        case PaymentCompleted.eventType:
            let event = try EventEnvelope<PaymentCompleted>(record: record).payload
            return (event.orderID, { $0.pay(amount: event.amount) })
        case DeliveryScheduled.eventType:
            let event = try EventEnvelope<DeliveryScheduled>(record: record).payload
            return (event.orderID, { $0.scheduleDelivery(riderID: event.riderID) })
        case StockFailed.eventType:
            let event = try EventEnvelope<StockFailed>(record: record).payload
            return (event.orderID, { $0.cancel(reason: OrderService.reason(event)) })
        case PaymentFailed.eventType:
            let event = try EventEnvelope<PaymentFailed>(record: record).payload
            return (event.orderID, { $0.cancel(reason: OrderService.reason(event)) })
        case DeliveryFailed.eventType:
            let event = try EventEnvelope<DeliveryFailed>(record: record).payload
            return (event.orderID, { $0.cancel(reason: OrderService.reason(event)) })
        case OrderTimedOut.eventType:
            let event = try EventEnvelope<OrderTimedOut>(record: record).payload
            return (event.orderID, { [orderTimeout] in $0.cancel(reason: OrderService.timeoutReason(orderTimeout)) })
        default:
            return nil
        }
    }

    // MARK: Queries (the read model)

    /// The order `id` as the view holds it, or nil. With `minVersion`, waits (up to
    /// ``readTimeout``) until the view holds the order at that version or later, so a client
    /// reads its own write; throws ``ReadModelBehind`` if it does not in time.
    public func order(_ id: String, minVersion: Int64?) async throws -> Order? {
        let deadline = ContinuousClock.now + readTimeout
        while true {
            let order = try await participant.database.read { db in try OrderService.fetchOrder(id, from: Self.viewTable, db) }
            guard let minVersion, (order?.version ?? -1) < minVersion else { return order }
            guard ContinuousClock.now < deadline else {
                throw ReadModelBehind(orderID: id, wanted: minVersion, held: order?.version, waited: readTimeout)
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The orders of the view in `state` (all if nil), oldest first.
    public func orders(in state: Order.State?) async throws -> [Order] {
        try await participant.database.read { db in try OrderService.fetchOrders(in: state, from: Self.viewTable, db) }
    }

    /// Empties `orders_view` and forgets the projection's position, so the next ``run()`` replays
    /// `order-events` from offset 0 into it. Call it while the service is not running.
    public func rebuildProjection() throws {
        try projection.rebuild { db in try db.execute(sql: "DELETE FROM \(Self.viewTable)") }
    }

    /// Applies one aggregate event to `orders_view` (the projection's step, in its transaction).
    static func project(_ db: Database, _ record: SpoolRecord) throws {
        let event = try JSONDecoder().decode(OrderAggregate.Event.self, from: Data(record.value))
        let id = String(decoding: record.key ?? [], as: UTF8.self)
        switch event {
        case .placed(let order, let at):
            try db.cachedStatement(sql: """
                INSERT INTO \(viewTable) (id, user_id, product_id, quantity, total, state, coupon, created_at, updated_at, version)
                VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?)
                """).execute(arguments: [id, order.userID, order.productID, order.quantity, order.total, order.coupon, at, at, record.offset])
        case .stockReserved, .paid:
            try db.cachedStatement(sql: "UPDATE \(viewTable) SET version = ? WHERE id = ?").execute(arguments: [record.offset, id])
        case .deliveryScheduled, .cancelled:
            let (state, reason): (Order.State, String?) = if case .cancelled(let reason) = event { (.cancelled, reason) } else { (.completed, nil) }
            try db.cachedStatement(sql: "UPDATE \(viewTable) SET state = ?, reason = ?, updated_at = ?, version = ? WHERE id = ?")
                .execute(arguments: [state.rawValue, reason, record.timestamp, record.offset, id])
        }
    }

    // MARK: Running

    /// Runs the service's background side until the task is cancelled (then returns) or a part of
    /// it fails for good (then throws, having stopped the others): the participant (order
    /// timeouts), the consumer of the saga's events, the relay, and the projection. Run it once
    /// at a time; it may run again after it returned (its producer stays open for ``place(userID:productID:quantity:coupon:)``).
    public func run() async throws {
        try await createTopic()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.participant.run() }
            group.addTask { try await self.consumeSagaEvents() }
            group.addTask { try await self.relaySagaEvents() }
            group.addTask { try await self.projection.run() }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// Creates `order-events` if it does not exist (the relay and the projection read it from the start).
    private func createTopic() async throws {
        var wait = Duration.milliseconds(100)
        while !Task.isCancelled {
            do throws(SpoolError) {
                guard try await participant.client.topics([OrderAggregate.topic]).isEmpty else { return }
                try await participant.client.createTopic(OrderAggregate.topic)
                return
            } catch {
                guard error.code != .topicAlreadyExists else { return }
                guard error.isRetriable || error.code == .timedOut else { throw error }
                try await Task.sleep(for: wait)
                wait = min(wait * 2, .seconds(2))
            }
        }
    }

    /// Turns the saga's incoming events into aggregate events until cancelled: consumed as group
    /// `order` (at least once), one order's events in order, different orders' side by side.
    private func consumeSagaEvents() async throws {
        let consumer = try Consumer(client: participant.client, group: OrderService.name, topics: Self.incoming.map { $0.topic },
                                    configuration: participant.configuration.consumer, logger: logger)
        var records = consumer.makeAsyncIterator()
        var interrupted = false
        do {
            while !Task.isCancelled, let batch = try await records.nextBatch(upTo: participant.configuration.maxRecordsPerTransaction) {
                let byOrder = Dictionary(grouping: batch, by: { $0.key ?? [] })
                await withTaskGroup(of: Void.self) { group in
                    for chain in byOrder.values {
                        group.addTask { for record in chain { await self.handle(record) } }
                    }
                }
                // An interrupted batch must not count as processed: it comes again (the decisions are idempotent).
                if Task.isCancelled { interrupted = true }
            }
        } catch is CancellationError {
        } catch {
            await Task { await consumer.close(countingLastRecord: false) }.value
            throw error
        }
        await Task { await consumer.close(countingLastRecord: !interrupted) }.value
    }

    /// Makes `record`'s aggregate events, retrying while the broker is unreachable, until done
    /// or cancelled. A record that is not a readable saga event is logged and skipped.
    private func handle(_ record: SpoolRecord) async {
        let origin = "\(record.topic)/\(record.partition)@\(record.offset)"
        let decision: (orderID: String, decide: (OrderAggregate) -> [OrderAggregate.Event])
        do throws(SpoolError) {
            guard let found = try self.decision(for: record) else { return }
            decision = found
        } catch {
            logger.error("unreadable saga event skipped", metadata: ["at": "\(origin)", "error": "\(error.message)"])
            return
        }
        var wait = Duration.milliseconds(50)
        while !Task.isCancelled {
            do {
                try await repository.update(decision.orderID, decision.decide)
                return
            } catch {
                logger.warning("could not update the order; retrying", metadata: ["order": "\(decision.orderID)", "at": "\(origin)", "error": "\(error)"])
                try? await Task.sleep(for: wait)
                wait = min(wait * 2, .seconds(2))
            }
        }
    }

    // MARK: Relay

    /// Publishes the saga's events derived from `order-events`, every partition from its stored
    /// position on, until cancelled.
    private func relaySagaEvents() async throws {
        let partitions = try await participant.client.topics([OrderAggregate.topic]).first?.partitions.count ?? 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            for partition in 0..<Int32(partitions) {
                group.addTask { try await self.relay(partition: partition) }
            }
            try await group.waitForAll()
        }
    }

    /// The event id of the saga event derived from the aggregate event at `record`'s place: the
    /// same for every replay of it.
    static func derivedEventID(_ record: SpoolRecord) -> String { "\(record.topic)/\(record.partition)@\(record.offset)" }

    private func relay(partition: Int32) async throws {
        var next = try await participant.database.read { db in
            try Int64.fetchOne(db, sql: "SELECT next_offset FROM order_relay_positions WHERE partition = ?", arguments: [partition]) ?? 0
        }
        var wait = Duration.milliseconds(50)
        while !Task.isCancelled {
            do {
                let page = try await participant.client.fetch(from: OrderAggregate.topic, partition: partition, offset: next, maxWait: .seconds(1))
                guard let last = page.records.last else { continue }
                try await relay(page.records)
                next = last.offset + 1
                wait = .milliseconds(50)
            } catch {
                guard !Task.isCancelled, (error as? SpoolError)?.code != .cancelled else { return }
                // The page is published again from its start: the same event ids, dropped by the inboxes.
                logger.warning("relay: could not publish; retrying", metadata: ["partition": "\(partition)", "error": "\(error)"])
                try? await Task.sleep(for: wait)
                wait = min(wait * 2, .seconds(2))
            }
        }
    }

    /// Publishes the saga events of `records` (aggregate events of one partition, in order), then
    /// stores the position after them with the order timeouts they start or end.
    private func relay(_ records: [SpoolRecord]) async throws {
        var timeouts: [(orderID: String, starts: Bool)] = []
        let decoder = JSONDecoder()
        for record in records {
            let orderID = String(decoding: record.key ?? [], as: UTF8.self)
            guard let event = try? decoder.decode(OrderAggregate.Event.self, from: Data(record.value)) else {
                logger.error("relay: an aggregate event that does not decode is skipped", metadata: ["at": "\(Self.derivedEventID(record))"])
                continue
            }
            guard OrderAggregate.announces(event) else { continue }
            let order: OrderCreated?
            if case .placed(let created, _) = event {
                order = created
                openOrders.withLock { $0[orderID] = created }
            } else if let remembered = openOrders.withLock({ $0.removeValue(forKey: orderID) }) {
                order = remembered
            } else {
                order = try await repository.load(orderID, asOf: .offset(record.offset)).state.order
            }
            guard let order, let (derived, role) = OrderAggregate.integrationEvent(for: event, of: order) else { continue }
            let outgoing = try Self.record(of: derived, derivedFrom: record, orderID: orderID)
            try await producer.enqueue(to: type(of: derived).topic, key: outgoing.key, value: outgoing.value,
                                       headers: outgoing.headers + [RecordHeader(name: EventHeaderName.role, string: role.rawValue)],
                                       timestamp: outgoing.timestamp)
            if case .placed = event { timeouts.append((orderID, true)) } else { timeouts.append((orderID, false)) }
        }
        try await producer.flush()
        let (partition, after, orderTimeout, timeoutChanges) = (records[0].partition, records[records.count - 1].offset + 1, orderTimeout, timeouts)
        try await participant.transaction { context in
            for (orderID, starts) in timeoutChanges {
                if starts {
                    try context.scheduleTimeout(OrderTimedOut(orderID: orderID), after: orderTimeout, correlationID: orderID)
                } else {
                    try context.cancelTimeout(OrderTimedOut.self, correlationID: orderID)
                }
            }
            try context.db.execute(sql: """
                INSERT INTO order_relay_positions (partition, next_offset) VALUES (?, ?)
                ON CONFLICT (partition) DO UPDATE SET next_offset = excluded.next_offset
                """, arguments: [partition, after])
        }
    }

    /// The record of `derived`, the saga event derived from the aggregate event at `source`,
    /// encoded as every event is (``EventEnvelope/record()``): its id and time are the aggregate
    /// event's place and time, so a replay gives the same record.
    private static func record<Derived: SpoolEvent>(of derived: Derived, derivedFrom source: SpoolRecord,
                                                    orderID: String) throws(SpoolError) -> OutgoingRecord {
        var envelope = EventEnvelope(derived, correlationID: orderID, causationID: try? EventMetadata(headers: source.headers)?.eventID,
                                     source: OrderService.name)
        envelope.metadata.eventID = derivedEventID(source)
        envelope.metadata.time = source.timestamp
        return try envelope.record()
    }
}

/// `GET /orders/{id}?min-version=N` found the view behind version N after waiting: the order is
/// at that version in the event store (the caller wrote it), the read model has not caught up yet.
public struct ReadModelBehind: Error, CustomStringConvertible {
    /// The order read.
    public var orderID: String
    /// The version asked for.
    public var wanted: Int64
    /// The version the view holds; nil if it has not the order at all yet.
    public var held: Int64?
    /// How long the read waited.
    public var waited: Duration

    /// What the 504 answer says.
    public var description: String {
        "the read model holds order \(orderID) at version \(held.map(String.init) ?? "none") after \(waited), not yet \(wanted): try again"
    }
}

extension Order {
    /// A just-written order as the aggregate has it (the response to `POST /orders`).
    init(_ aggregate: OrderAggregate, version: Int64?) {
        let order = aggregate.order
        id = order?.orderID ?? ""
        userId = order?.userID ?? ""
        productId = order?.productID ?? ""
        quantity = order?.quantity ?? 0
        total = order?.total ?? 0
        state = aggregate.state
        reason = aggregate.reason
        coupon = order?.coupon
        createdAt = EventMetadata.formatTime(aggregate.placedAt)
        updatedAt = createdAt
        self.version = version
    }
}
