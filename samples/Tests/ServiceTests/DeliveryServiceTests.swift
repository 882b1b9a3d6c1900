import DeliveryService
import GRDB
import Logging
import SagaEvents
import ServiceKit
import Spool
import SpoolSaga
import SpoolTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct DeliveryServiceTests {
    /// The service in `mode` with its courier on a dispatch refusing half the registration calls
    /// and losing half the acknowledgements, retrying quickly, 40 attempts: one attempt succeeds
    /// with probability 1/4, so a delivery fails with 0.75^40 ≈ 1e-5 (with 8 attempts, 10%).
    private func start(_ mode: SagaMode) async throws -> (ServiceUnderTest, RiderDispatch, Task<Void, Never>) {
        let service = try await ServiceUnderTest(DeliveryService.name, prepare: DeliveryService.prepare) { participant, _ in
            DeliveryService.register(on: participant, mode: mode)
        }
        let dispatch = try RiderDispatch(path: service.directory.appending("dispatch.sqlite"), riders: service.seed.riders, failureRate: 0.5, lostAckRate: 0.5)
        let participant = service.participant
        let courier = Task {
            await DeliveryService.runCourier(participant: participant, dispatch: dispatch,
                                             retry: RetryPolicy(maxAttempts: 40, initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(20)),
                                             poll: .milliseconds(5), logger: Logger(label: "test"))
        }
        return (service, dispatch, courier)
    }

    /// The dispatch's registrations: order id → (rider, state).
    private func registrations(_ dispatch: RiderDispatch) throws -> [String: (rider: String, state: String)] {
        try dispatch.system.database.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT order_id, rider_id, state FROM registrations").map {
                ($0["order_id"] as String, (rider: $0["rider_id"] as String, state: $0["state"] as String))
            })
        }
    }

    @Test func eachPaidOrderGetsOneRiderOfItsZoneThroughAFlakyDispatchAndACancellationWithdrawsIt() async throws {
        let (service, dispatch, courier) = try await start(.choreography)
        let users = ["ada": "centre", "bob": "north", "chen": "south"]
        for (index, user) in ["ada", "bob", "chen", "ada", "bob", "chen"].enumerated() {
            try await service.publish(PaymentCompleted(orderID: "o\(index)", userID: user, amount: 10), saga: "o\(index)")
        }
        let scheduled = try await service.waitForEvents(DeliveryScheduled.self, count: 6)
        #expect(scheduled.map(\.payload.orderID).sorted() == (0..<6).map { "o\($0)" })
        var registered = try registrations(dispatch)
        #expect(registered.count == 6 && registered.values.allSatisfy { $0.state == "active" })
        let zones = Dictionary(uniqueKeysWithValues: service.seed.riders.map { ($0.id, Set($0.zones)) })
        for event in scheduled {
            #expect(registered[event.payload.orderID]?.rider == event.payload.riderID, "the rider the dispatch holds is the one announced")
            #expect(zones[event.payload.riderID]?.contains(users[event.payload.userID]!) == true, "a rider of the user's zone")
        }

        // A cancelled order's delivery is cancelled and its rider matching withdrawn, once.
        try await service.publish(OrderCancelled(orderID: "o0", userID: "ada", reason: "timeout"), saga: "o0")
        try await service.publish(OrderCancelled(orderID: "o0", userID: "ada", reason: "timeout"), saga: "o0")
        #expect(try await service.waitForEvents(DeliveryCancelled.self, count: 1).map(\.payload.orderID) == ["o0"])
        #expect(await eventually { (try? self.registrations(dispatch)["o0"]?.state) == "withdrawn" })
        // A cancellation that overtakes the payment: the late payment registers nobody.
        try await service.publish(OrderCancelled(orderID: "o9", userID: "eve", reason: "stock: out of stock"), saga: "o9")
        try await service.publish(PaymentCompleted(orderID: "o9", userID: "eve", amount: 10), saga: "o9")
        #expect(await service.waitUntilHandled(10))
        try await Task.sleep(for: .milliseconds(200))
        registered = try registrations(dispatch)
        #expect(registered["o9"] == nil)
        #expect(try await service.events(DeliveryCancelled.self).count == 1)
        #expect(try await service.events(DeliveryScheduled.self).count == 6)
        let attempts = try await service.database.read { db in try Int.fetchOne(db, sql: "SELECT sum(attempts) FROM deliveries") } ?? 0
        #expect(attempts > 6, "the flaky dispatch made the courier retry")
        courier.cancel()
        await courier.value
        try await service.stop()
    }

    @Test func aZoneNoRiderServesFailsTheDeliveryAfterItsAttempts() async throws {
        let (service, dispatch, courier) = try await start(.choreography)
        try await service.publish(PaymentCompleted(orderID: "o1", userID: "gus", amount: 10), saga: "o1")
        let failed = try await service.waitForEvents(DeliveryFailed.self, count: 1)
        #expect(failed.first?.payload.reason.hasPrefix("no rider registered after 40 attempts") == true)
        #expect(try await service.events(DeliveryFailed.self).first?.record.headers.text(of: EventHeaderName.role) == "failure")
        #expect(try registrations(dispatch).isEmpty)
        let row = try service.database.read { db in
            try Row.fetchOne(db, sql: "SELECT state, attempts, last_error FROM deliveries WHERE order_id = 'o1'")
        }
        #expect(row?["state"] == "failed" && row?["attempts"] == 40)
        // The order's cancellation then undoes nothing more.
        try await service.publish(OrderCancelled(orderID: "o1", userID: "gus", reason: "delivery"), saga: "o1")
        #expect(await service.waitUntilHandled(2))
        #expect(try await service.events(DeliveryCancelled.self).isEmpty)
        courier.cancel()
        await courier.value
        try await service.stop()
    }

    @Test func inTheOrchestrationARegistrationIsAnsweredOnceARiderIsRegisteredAndACancellationAtOnce() async throws {
        let (service, dispatch, courier) = try await start(.orchestration)
        let command = EventEnvelope(RegisterDeliveryCommand(orderID: "o1", userID: "bob"), correlationID: "o1", source: "order")
        try await service.publish(command)
        let replies = try await service.waitForEvents(DeliveryRegistration.self, count: 1)
        #expect(replies.first?.metadata.causationID == command.metadata.eventID)
        let rider = try #require(replies.first?.payload.riderID)
        #expect(replies.first?.payload.refusal == nil)
        #expect(try registrations(dispatch)["o1"]?.rider == rider)
        // The same command again (an orchestrator's resend): the same reply, nothing new.
        try await service.publish(command)
        #expect(await eventually { (try? await service.events(DeliveryRegistration.self).count) == 2 })
        #expect(Set(try await service.events(DeliveryRegistration.self).map(\.event.metadata.eventID)).count == 1)

        let cancel = EventEnvelope(CancelDeliveryCommand(orderID: "o1"), correlationID: "o1", source: "order")
        try await service.publish(cancel)
        #expect(try await service.waitForEvents(DeliveryCancellation.self, count: 1).first?.metadata.causationID == cancel.metadata.eventID)
        #expect(await eventually { (try? self.registrations(dispatch)["o1"]?.state) == "withdrawn" })
        // A registration asked after its cancellation is refused at once.
        try await service.publish(CancelDeliveryCommand(orderID: "o2"), saga: "o2")
        try await service.publish(RegisterDeliveryCommand(orderID: "o2", userID: "bob"), saga: "o2")
        let late = try await service.waitForEvents(DeliveryRegistration.self, count: 3)
        #expect(late.last?.payload == DeliveryRegistration(orderID: "o2", riderID: nil, refusal: "order already cancelled"))
        courier.cancel()
        await courier.value
        try await service.stop()
    }
}
