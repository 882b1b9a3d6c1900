import Foundation
import GRDB
import Spool
import SpoolSaga
import SpoolTesting
import Synchronization
import Testing

struct PaymentRefused: SpoolEvent {
    static let eventType = "payment-refused"
    var reason: String
}

struct CancelCoupon: SpoolEvent {
    static let eventType = "cancel-coupon"
    var code: String
}

struct CancelDelivery: SpoolEvent {
    static let eventType = "cancel-delivery"
}

struct ShipOrder: SpoolEvent {
    static let eventType = "ship-order"
    var parcel: Int
}

struct RequestRider: SpoolEvent {
    static let eventType = "request-rider"
}

/// The shipper's failure, as its dead letters report it.
struct PrinterJammed: Error, CustomStringConvertible {
    var description: String { "label printer jammed" }
}

/// Failures to come, per saga.
final class FailurePlan: Sendable {
    let counts = Mutex<[String: Int]>([:])
}

/// The rule table of these tests.
let orderRules: [SupervisorRule] = [
    .failed(PaymentRefused.self, from: "balance", .compensate([
        .send { report in CancelCoupon(code: "coupon-of-\(report.sagaID)") },
        .send { _ in CancelDelivery() },
    ])),
    .deadLettered(ShipOrder.self, by: "shipper", .retry(attempts: 2, backoff: .milliseconds(100))),
    .deadLettered(RequestRider.self, by: "delivery", .escalate(compensation: [.send { _ in CancelDelivery() }])),
]

/// A broker, the services whose failures are supervised, and a supervisor, on real SQLite files.
final class SupervisedWorld: Sendable {
    let directory: TemporaryDirectory
    let broker: InProcessBroker
    let client: SpoolClient
    /// Handler failures still to come, per saga: the shipper throws while its count is above 0.
    let shipperFailures = FailurePlan()
    let shipper: RunningParticipant
    let shipperDatabase: DatabasePool
    let audit: RunningParticipant
    let delivery: RunningParticipant

    init() async throws {
        directory = try TemporaryDirectory()
        broker = try InProcessBroker()
        client = try await broker.makeClient()
        shipperDatabase = try DatabasePool(path: directory.appending("shipper.sqlite"))
        try await shipperDatabase.write { db in try db.execute(sql: "CREATE TABLE shipments (saga TEXT NOT NULL, parcel INTEGER NOT NULL)") }
        let shipper = try SagaParticipant(name: "shipper", client: client, database: shipperDatabase, configuration: quickRetries)
        shipper.on(ShipOrder.self) { [shipperFailures] event, context in
            let fail = shipperFailures.counts.withLock { failures in
                defer { failures[event.metadata.correlationID, default: 0] -= 1 }
                return failures[event.metadata.correlationID, default: 0] > 0
            }
            if fail { throw PrinterJammed() }
            try context.db.execute(sql: "INSERT INTO shipments VALUES (?, ?)", arguments: [event.metadata.correlationID, event.payload.parcel])
        }
        // Another service on the same topic, which handled every event the first time.
        let audit = try SagaParticipant(name: "audit", client: client, database: try DatabasePool(path: directory.appending("audit.sqlite")),
                                        configuration: quickRetries)
        audit.on(ShipOrder.self) { _, _ in }
        let delivery = try SagaParticipant(name: "delivery", client: client,
                                           database: try DatabasePool(path: directory.appending("delivery.sqlite")), configuration: quickRetries)
        delivery.on(RequestRider.self) { _, _ in throw PermanentFailure("no rider in this town") }
        self.shipper = RunningParticipant(shipper)
        self.audit = RunningParticipant(audit)
        self.delivery = RunningParticipant(delivery)
    }

    /// A supervisor on `supervisor.sqlite` (a fresh pool each time, as a restarted process opens it).
    func makeSupervisor(rules: [SupervisorRule] = orderRules) throws -> Supervisor {
        Supervisor(participant: try SagaParticipant(name: "order-supervisor", client: client,
                                                    database: try DatabasePool(path: directory.appending("supervisor.sqlite")),
                                                    configuration: quickRetries),
                   flow: "order", rules: rules)
    }

    /// Retries of `supervisor.sqlite` waiting for their backoff.
    func pendingRetries() throws -> Int {
        try DatabaseQueue(path: directory.appending("supervisor.sqlite")).read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_timeouts") ?? 0
        }
    }

    /// Publishes `event` of saga `saga` as service `source` would, with `role`.
    func publish<E: SpoolEvent>(_ event: E, saga: String, source: String, role: EventRole = .success) async throws {
        var record = try EventEnvelope(event, correlationID: saga, source: source).record()
        record.headers.append(RecordHeader(name: EventHeaderName.role, string: role.rawValue))
        try await client.publish(to: E.topic, records: [record])
    }

    func shipments(_ saga: String) async throws -> Int {
        try await shipperDatabase.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM shipments WHERE saga = ?", arguments: [saga]) ?? 0 }
    }

    func shutdown() async throws {
        for service in [shipper, audit, delivery] { try await service.stop() }
        client.close()
        await broker.stop()
    }
}

/// The supervisor against a real in-process broker, real SQLite files and real participants.
@Suite(.timeLimit(.minutes(2))) struct SupervisorTests {
    @Test func aFailureEventGetsItsDeclaredCompensationsOnceAndAFailureNoRuleAnswersParksTheSaga() async throws {
        let world = try await SupervisedWorld()
        let supervisor = try world.makeSupervisor()
        let running = Task { try await supervisor.run() }
        try await world.publish(PaymentRefused(reason: "card declined"), saga: "o-1", source: "balance", role: .failure)
        // The same report delivered again (a republished record): nothing more is sent.
        let report = try await #require(world.client.events(PaymentRefused.self).first).record()
        try await world.client.publish(to: PaymentRefused.topic, records: [report])
        try await world.publish(PaymentRefused(reason: "fraud suspected"), saga: "o-2", source: "fraud-check", role: .failure)

        #expect(await eventually { (try? await supervisor.saga("o-2"))?.state == .parked })
        #expect(await eventually { (try? await supervisor.saga("o-1"))?.state == .compensated })
        #expect(await eventually { (try? await world.client.events(CancelDelivery.self).count) == 1 })
        let coupons = try await world.client.allRecords(of: CancelCoupon.topic)
        #expect(coupons.count == 1)
        let coupon = try EventEnvelope<CancelCoupon>(record: coupons[0])
        #expect(coupon.payload.code == "coupon-of-o-1" && coupon.metadata.correlationID == "o-1" && coupon.metadata.source == "order-supervisor")
        #expect(coupons[0].headers.text(of: EventHeaderName.role) == EventRole.compensation.rawValue)
        let o1 = try #require(try await supervisor.saga("o-1"))
        #expect(o1.compensatedSteps == ["cancel-coupon", "cancel-delivery"] && o1.reason == "payment-refused from balance")
        #expect(o1.history.map(\.change) == ["payment-refused from balance; compensate: cancel-coupon, cancel-delivery"])
        let o2 = try #require(try await supervisor.saga("o-2"))
        #expect(o2.reason == "payment-refused from fraud-check: no rule answers it")
        #expect(supervisor.statistics.reports == 2, "the repeated report went no further than the inbox")

        // The decisions are events of their sagas, and the rule table is published.
        #expect(await eventually { (try? await world.client.events(SagaStateChanged.self).count) == 2 })
        let states = try await world.client.events(SagaStateChanged.self)
        #expect(Set(states.map { "\($0.metadata.correlationID) \($0.payload.state.rawValue)" }) == ["o-1 compensated", "o-2 parked"])
        let rules = try #require(try await world.client.events(SagaRules.self).last)
        #expect(rules.payload.supervisor == "order-supervisor" && rules.payload.flow == "order")
        #expect(rules.payload.rules == [
            SagaRules.Rule(service: "balance", failure: "event payment-refused", action: "compensate: cancel-coupon, cancel-delivery"),
            SagaRules.Rule(service: "shipper", failure: "ship-order dead-lettered", action: "retry 2 times, backoff 100 ms"),
            SagaRules.Rule(service: "delivery", failure: "request-rider dead-lettered", action: "escalate; on request compensate: cancel-delivery"),
        ])
        running.cancel()
        try await running.value
        try await world.shutdown()
    }

    @Test func aDeadLetterIsRetriedForTheServiceThatFailedOnlyThenEscalatedAndAPersonCanRetryAgain() async throws {
        let world = try await SupervisedWorld()
        world.shipperFailures.counts.withLock { $0 = ["o-3": 3, "o-4": 9] }  // o-3: one delivery fails (3 attempts); o-4: three do
        let supervisor = try world.makeSupervisor()
        let running = Task { try await supervisor.run() }
        try await world.publish(ShipOrder(parcel: 7), saga: "o-3", source: "order")
        try await world.publish(ShipOrder(parcel: 8), saga: "o-4", source: "order")

        #expect(await eventually { (try? await world.shipments("o-3")) == 1 })
        #expect(await eventually { (try? await supervisor.saga("o-4"))?.state == .parked })
        let o3 = try #require(try await supervisor.saga("o-3"))
        #expect(o3.state == .running && o3.history.map(\.change) == ["ship-order dead-lettered by shipper (label printer jammed): retry 1 of 2 in 100 ms"])
        let o4 = try #require(try await supervisor.saga("o-4"))
        #expect(o4.history.map(\.change) == [
            "ship-order dead-lettered by shipper (label printer jammed): retry 1 of 2 in 100 ms",
            "ship-order dead-lettered by shipper (label printer jammed): retry 2 of 2 in 200 ms",
            "parked: ship-order dead-lettered by shipper (label printer jammed): still failing after 2 retries",
        ])
        #expect(try await world.shipments("o-4") == 0)
        // The retried events reached the audit service too, which had them in its inbox.
        #expect(await eventually { world.audit.participant.statistics.duplicates == 3 })
        #expect(world.audit.participant.statistics.handled == 2)
        let republished = try await world.client.events(ShipOrder.self)
        #expect(republished.count == 5 && Set(republished.map(\.metadata.eventID)).count == 2, "the same two events, published again")

        // The printer is fixed; a person retries the parked saga.
        world.shipperFailures.counts.withLock { $0["o-4"] = 0 }
        let control = try EventEnvelope(SagaControl(sagaID: "o-4", action: .retry, requestedBy: "ops"), correlationID: "o-4", source: "test").record()
        try await world.client.publish(to: SagaControl.topic, records: [control])
        #expect(await eventually { (try? await world.shipments("o-4")) == 1 })
        #expect(try await supervisor.saga("o-4")?.history.last?.change == "retry requested by ops")
        #expect(try await supervisor.saga("o-4")?.state == .running)
        running.cancel()
        try await running.value
        try await world.shutdown()
    }

    @Test func anEscalatedSagaWaitsForAPersonWhoseCompensateSendsTheDeclaredCompensation() async throws {
        let world = try await SupervisedWorld()
        let supervisor = try world.makeSupervisor()
        let running = Task { try await supervisor.run() }
        try await world.publish(RequestRider(), saga: "o-5", source: "order")
        #expect(await eventually { (try? await supervisor.saga("o-5"))?.state == .parked })
        #expect(try await supervisor.saga("o-5")?.reason == "request-rider dead-lettered by delivery (no rider in this town): escalated")
        #expect(try await world.client.allRecords(of: CancelDelivery.topic).isEmpty, "nothing is compensated before a person decides")

        for action in [SagaControl.Action.compensate, .retry] {
            let control = try EventEnvelope(SagaControl(sagaID: "o-5", action: action, requestedBy: "ops"), correlationID: "o-5", source: "test").record()
            try await world.client.publish(to: SagaControl.topic, records: [control])
        }
        #expect(await eventually { (try? await supervisor.saga("o-5"))?.history.count == 3 })
        let o5 = try #require(try await supervisor.saga("o-5"))
        #expect(o5.state == .compensated && o5.compensatedSteps == ["cancel-delivery"])
        #expect(o5.history.map(\.change).suffix(2) == ["compensate requested by ops; compensate: cancel-delivery",
                                                       "retry requested by ops: ignored, the saga is compensated"])
        #expect(await eventually { (try? await world.client.allRecords(of: CancelDelivery.topic).count) == 1 })
        running.cancel()
        try await running.value
        try await world.shutdown()
    }

    @Test func aRetryWaitingForItsBackoffSurvivesARestartOfTheSupervisor() async throws {
        let world = try await SupervisedWorld()
        world.shipperFailures.counts.withLock { $0 = ["o-6": 3] }
        // A backoff long enough that the supervisor surely stops before the retry is due.
        let rules = [SupervisorRule.deadLettered(ShipOrder.self, by: "shipper", .retry(attempts: 2, backoff: .seconds(2)))]
        var supervisor = try world.makeSupervisor(rules: rules)
        var running = Task { [supervisor] in try await supervisor.run() }
        try await world.publish(ShipOrder(parcel: 1), saga: "o-6", source: "order")
        #expect(await eventually { (try? await supervisor.saga("o-6"))?.history.count == 1 })
        running.cancel()
        try await running.value
        #expect(try world.pendingRetries() == 1, "the retry waits in the database, not in the stopped process")
        #expect(try await world.shipments("o-6") == 0)

        supervisor = try world.makeSupervisor(rules: rules)
        running = Task { [supervisor] in try await supervisor.run() }
        #expect(await eventually { (try? await world.shipments("o-6")) == 1 })
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await world.shipments("o-6") == 1)
        #expect(try await supervisor.saga("o-6")?.history.count == 1, "one report, one retry")
        running.cancel()
        try await running.value
        try await world.shutdown()
    }
}
