import Foundation
import GRDB
import Spool
import SpoolSaga
import SpoolTesting
import Synchronization
import Testing

// The saga of these tests: take items from the shelf (undone by returning them), charge the
// wallet (nothing undoes a refused charge), dispatch by courier (undone by cancelling it).

struct ReturnItems: SagaCommand {
    typealias Reply = ItemsReturned
    static let eventType = "return-items"
    static let topic = "shelf.commands"
    var quantity: Int
}

struct ItemsReturned: SpoolEvent {
    static let eventType = "items-returned"
    static let topic = "orchestrator.replies"
    var left: Int
}

struct Charge: SagaCommand {
    typealias Reply = Charged
    static let eventType = "charge"
    static let topic = "wallet.commands"
    var amount: Int
}

struct Charged: SpoolEvent {
    static let eventType = "charged"
    static let topic = "orchestrator.replies"
    var refusal: String?
}

struct Dispatch: SagaCommand {
    typealias Reply = Dispatched
    static let eventType = "dispatch"
    static let topic = "courier.commands"
}

struct Dispatched: SpoolEvent {
    static let eventType = "dispatched"
    static let topic = "orchestrator.replies"
}

struct CancelDispatch: SagaCommand {
    typealias Reply = DispatchCancelled
    static let eventType = "cancel-dispatch"
    static let topic = "courier.commands"
}

struct DispatchCancelled: SpoolEvent {
    static let eventType = "dispatch-cancelled"
    static let topic = "orchestrator.replies"
}

/// The saga's own data: what to buy, and what the shelf said was left.
struct Purchase: Codable, Sendable {
    var quantity: Int
    var amount: Int
    var left: Int?
}

/// The purchase saga; its outcome is written to the orchestrator's `outcomes` table by `onEnd`.
/// The dispatch's timeout and attempts can be short (for a courier that never answers); the other
/// steps wait long enough for a loaded machine.
func purchaseSaga(dispatchTimeout: Duration = .seconds(30), dispatchAttempts: Int = 3) -> SagaDefinition<Purchase> {
    SagaDefinition(name: "purchase", steps: [
        .init("take-items", timeout: .seconds(30), send: { TakeItems(quantity: $0.quantity) },
              onReply: { reply, data in data.left = reply.left; return .success })
            .compensated { ReturnItems(quantity: $0.quantity) },
        .init("charge", timeout: .seconds(30), send: { Charge(amount: $0.amount) },
              onReply: { reply, _ in reply.refusal.map { .failure(reason: $0) } ?? .success }),
        .init("dispatch", timeout: dispatchTimeout, attempts: dispatchAttempts, send: { _ in Dispatch() }, onReply: { _, _ in .success })
            .compensated { _ in CancelDispatch() },
    ], onEnd: { outcome, context in
        try context.db.execute(sql: "INSERT INTO outcomes (saga, state, left_after, reason) VALUES (?, ?, ?, ?)",
                               arguments: [outcome.sagaID, outcome.state.rawValue, outcome.data.left, outcome.reason])
    })
}

/// One in-process broker, real SQLite files per service, and the services of the purchase saga,
/// each started and stopped on its own.
final class PurchaseWorld: Sendable {
    let directory: TemporaryDirectory
    let broker: InProcessBroker
    let client: SpoolClient
    let shelfDatabase: DatabasePool
    let walletDatabase: DatabasePool
    let courierDatabase: DatabasePool
    private let running = Mutex<[String: RunningParticipant]>([:])

    init(stock: Int = 10, balance: Int = 100) async throws {
        directory = try TemporaryDirectory()
        broker = try InProcessBroker()
        client = try await broker.makeClient()
        shelfDatabase = try makeShelfDatabase(in: directory, stock: stock)
        walletDatabase = try DatabasePool(path: directory.appending("wallet.sqlite"))
        try await walletDatabase.write { db in
            try db.execute(sql: "CREATE TABLE wallet (balance INTEGER NOT NULL); INSERT INTO wallet VALUES (\(balance))")
        }
        courierDatabase = try DatabasePool(path: directory.appending("courier.sqlite"))
        try await courierDatabase.write { db in
            try db.execute(sql: "CREATE TABLE deliveries (saga TEXT PRIMARY KEY, cancelled INTEGER NOT NULL, command_id TEXT)")
        }
    }

    /// An orchestrator on a fresh pool of `orchestrator.sqlite` (as a restarted process opens it).
    func makeOrchestrator(_ definition: SagaDefinition<Purchase>) throws -> Orchestrator {
        let database = try DatabasePool(path: directory.appending("orchestrator.sqlite"))
        try database.write { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS outcomes (saga TEXT PRIMARY KEY, state TEXT NOT NULL, left_after INTEGER, reason TEXT)")
        }
        let orchestrator = Orchestrator(participant: try SagaParticipant(name: "orchestrator", client: client, database: database,
                                                                          configuration: quickRetries))
        orchestrator.register(definition)
        return orchestrator
    }

    func startShelf() throws {
        let shelf = try SagaParticipant(name: "shelf", client: client, database: shelfDatabase, configuration: quickRetries)
        shelf.handle(TakeItems.self) { command, context in
            try context.db.execute(sql: "UPDATE shelf SET quantity = quantity - ?", arguments: [command.payload.quantity])
            return ItemsTaken(left: try Int.fetchOne(context.db, sql: "SELECT quantity FROM shelf") ?? -1)
        }
        shelf.handle(ReturnItems.self) { command, context in
            try context.db.execute(sql: "UPDATE shelf SET quantity = quantity + ?", arguments: [command.payload.quantity])
            return ItemsReturned(left: try Int.fetchOne(context.db, sql: "SELECT quantity FROM shelf") ?? -1)
        }
        start(shelf)
    }

    func startWallet() throws {
        let wallet = try SagaParticipant(name: "wallet", client: client, database: walletDatabase, configuration: quickRetries)
        wallet.handle(Charge.self) { command, context in
            let balance = try Int.fetchOne(context.db, sql: "SELECT balance FROM wallet") ?? 0
            guard balance >= command.payload.amount else { return Charged(refusal: "balance \(balance) is short of \(command.payload.amount)") }
            try context.db.execute(sql: "UPDATE wallet SET balance = balance - ?", arguments: [command.payload.amount])
            return Charged(refusal: nil)
        }
        start(wallet)
    }

    /// The courier: a cancellation recorded before its dispatch keeps the late dispatch from
    /// happening (the undo may overtake the command it undoes). `answeringLater`: a dispatch is
    /// accepted and recorded with its command id, and answered later by the test.
    @discardableResult
    func startCourier(answeringLater: Bool = false) throws -> SagaParticipant {
        let courier = try SagaParticipant(name: "courier", client: client, database: courierDatabase, configuration: quickRetries)
        courier.accept(Dispatch.self) { command, context in
            try context.db.execute(sql: "INSERT OR IGNORE INTO deliveries (saga, cancelled, command_id) VALUES (?, 0, ?)",
                                   arguments: [command.metadata.correlationID, command.metadata.eventID])
            return answeringLater ? nil : Dispatched()
        }
        courier.handle(CancelDispatch.self) { command, context in
            try context.db.execute(sql: "INSERT OR REPLACE INTO deliveries (saga, cancelled) VALUES (?, 1)", arguments: [command.metadata.correlationID])
            return DispatchCancelled()
        }
        start(courier)
        return courier
    }

    func start(_ participant: SagaParticipant) {
        let task = RunningParticipant(participant)
        running.withLock { $0[participant.name] = task }
    }

    func stop(_ name: String) async throws {
        try await running.withLock { $0.removeValue(forKey: name) }?.stop()
    }

    func shutdown() async throws {
        for name in running.withLock({ Array($0.keys) }) { try await stop(name) }
        client.close()
        await broker.stop()
    }

    func shelfQuantity() async throws -> Int? {
        try await shelfDatabase.read { db in try Int.fetchOne(db, sql: "SELECT quantity FROM shelf") }
    }

    func balance() async throws -> Int? {
        try await walletDatabase.read { db in try Int.fetchOne(db, sql: "SELECT balance FROM wallet") }
    }

    func delivery(_ saga: String) async throws -> Bool? {
        try await courierDatabase.read { db in try Bool.fetchOne(db, sql: "SELECT cancelled FROM deliveries WHERE saga = ?", arguments: [saga]) }
    }

    /// Publishes a person's decision about `saga`, as `spool saga retry|compensate` does.
    func decide(_ action: SagaControl.Action, _ saga: String) async throws {
        let record = try EventEnvelope(SagaControl(sagaID: saga, action: action, requestedBy: "ops"), correlationID: saga, source: "test").record()
        try await client.publish(to: SagaControl.topic, key: record.key, value: record.value, headers: record.headers)
    }

    /// The states published for `saga` on `spool.saga-states`, in order.
    func publishedStates(_ saga: String) async throws -> [SagaStateChanged] {
        try await client.events(SagaStateChanged.self).filter { $0.metadata.correlationID == saga }.map(\.payload)
    }
}

/// A running orchestrator, stopped by ``stop()``.
struct RunningOrchestrator {
    let orchestrator: Orchestrator
    let task: Task<Void, any Error>

    init(_ orchestrator: Orchestrator) {
        self.orchestrator = orchestrator
        task = Task { try await orchestrator.run() }
    }

    func stop() async throws {
        task.cancel()
        try await task.value
    }

    func state(of saga: String) async throws -> SagaState? {
        try await orchestrator.instance(saga)?.state
    }

    /// Waits until `saga` is in `state`; false if it never gets there.
    func reaches(_ saga: String, _ state: SagaState, step: String? = nil) async -> Bool {
        await eventually {
            guard let instance = try? await orchestrator.instance(saga) else { return false }
            return instance.state == state && (step == nil || instance.step == step)
        }
    }
}

/// The orchestrator against a real in-process broker and real SQLite files, one per service.
@Suite(.timeLimit(.minutes(2))) struct OrchestratorTests {
    @Test func everyStepSucceedsInOrderAndTheEndIsRecordedWithTheStateChangesPublished() async throws {
        let world = try await PurchaseWorld()
        try world.startShelf()
        try world.startWallet()
        try world.startCourier()
        let running = RunningOrchestrator(try world.makeOrchestrator(purchaseSaga()))
        try await running.orchestrator.start(purchaseSaga(), id: "p-1", data: Purchase(quantity: 3, amount: 40))

        #expect(await running.reaches("p-1", .completed))
        let instance = try #require(try await running.orchestrator.instance("p-1"))
        #expect(instance.completedSteps == ["take-items", "charge", "dispatch"])
        #expect(instance.compensatedSteps.isEmpty)
        #expect(instance.history.map(\.change) == ["started", "take-items succeeded", "charge succeeded", "dispatch succeeded; completed"])
        #expect(try await world.shelfQuantity() == 7)
        #expect(try await world.balance() == 60)
        #expect(try await world.delivery("p-1") == false)
        let outcome = try running.orchestrator.participant.database.read { db in
            try Row.fetchOne(db, sql: "SELECT state, left_after FROM outcomes WHERE saga = 'p-1'")
        }
        #expect(outcome?["state"] == "completed" && outcome?["left_after"] == 7, "onEnd saw the data the replies left")

        // Published in the same transactions: one state change per history entry, keyed by saga id.
        #expect(await eventually { (try? await world.publishedStates("p-1").count) == 4 })
        let published = try await world.publishedStates("p-1")
        #expect(published.map(\.state) == [.running, .running, .running, .completed])
        #expect(published.map(\.step) == ["take-items", "charge", "dispatch", "dispatch"])
        let records = try await world.client.allRecords(of: SagaStateChanged.topic)
        #expect(records.allSatisfy { $0.key == Array("p-1".utf8) })
        #expect(running.orchestrator.statistics.started == 1 && running.orchestrator.statistics.completed == 1)
        try await running.stop()
        try await world.shutdown()
    }

    @Test func anAcceptedCommandIsAnsweredLaterOnceAndTheSameCommandAgainGetsThatReply() async throws {
        let world = try await PurchaseWorld()
        try world.startShelf()
        try world.startWallet()
        let courier = try world.startCourier(answeringLater: true)
        let running = RunningOrchestrator(try world.makeOrchestrator(purchaseSaga()))
        try await running.orchestrator.start(purchaseSaga(), id: "p-9", data: Purchase(quantity: 1, amount: 10))

        // Accepted (its row is committed) and not answered: the saga waits at the dispatch.
        #expect(await eventually { (try? await world.delivery("p-9")) == false })
        #expect(await running.reaches("p-9", .running, step: "dispatch"))
        let commandID = try #require(try await world.courierDatabase.read { db in
            try String.fetchOne(db, sql: "SELECT command_id FROM deliveries WHERE saga = 'p-9'")
        })
        try await courier.transaction { context in try context.reply(Dispatched(), toCommand: commandID, correlationID: "p-9") }
        #expect(await running.reaches("p-9", .completed))
        await #expect(throws: SpoolError.self, "a command is answered once") {
            try await courier.transaction { context in try context.reply(Dispatched(), toCommand: commandID, correlationID: "p-9") }
        }

        // The same command delivered again gets the kept reply again: same event id, nothing else happens.
        let command = try #require(try await world.client.allRecords(of: Dispatch.topic).first)
        try await world.client.publish(to: Dispatch.topic, key: command.key, value: command.value, headers: command.headers)
        func dispatchedIDs() async throws -> [String] {
            try await world.client.allRecords(of: Dispatched.topic).compactMap { try EventMetadata(headers: $0.headers) }
                .filter { $0.eventType == Dispatched.eventType }.map(\.eventID)
        }
        #expect(await eventually { (try? await dispatchedIDs().count) == 2 })
        let ids = try await dispatchedIDs()
        #expect(Set(ids).count == 1, "the repeat is the same reply")
        #expect(try EventMetadata(headers: try #require(try await world.client.allRecords(of: Dispatched.topic).last).headers)?.causationID == commandID)
        #expect(try await world.courierDatabase.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM deliveries") } == 1)
        try await running.stop()
        try await world.shutdown()
    }

    @Test func aRefusedStepUndoesOnlyTheStepsDoneBeforeItNewestFirst() async throws {
        let world = try await PurchaseWorld(balance: 10)
        try world.startShelf()
        try world.startWallet()
        try world.startCourier()
        let running = RunningOrchestrator(try world.makeOrchestrator(purchaseSaga()))
        try await running.orchestrator.start(purchaseSaga(), id: "p-2", data: Purchase(quantity: 4, amount: 40))

        #expect(await running.reaches("p-2", .compensated))
        let instance = try #require(try await running.orchestrator.instance("p-2"))
        #expect(instance.completedSteps == ["take-items"])
        #expect(instance.compensatedSteps == ["take-items"], "the refused charge did nothing to undo; dispatch never ran")
        #expect(instance.reason == "charge failed: balance 10 is short of 40")
        let outcome = try await running.orchestrator.participant.database.read { db in
            try String.fetchOne(db, sql: "SELECT reason FROM outcomes WHERE saga = 'p-2'")
        }
        #expect(outcome == "charge failed: balance 10 is short of 40", "onEnd saw why")
        #expect(try await world.shelfQuantity() == 10, "the items went back")
        #expect(try await world.balance() == 10)
        #expect(try await world.delivery("p-2") == nil, "nothing was sent to the courier")
        #expect(try await world.client.allRecords(of: Dispatch.topic).isEmpty)
        let states = try await world.publishedStates("p-2")
        #expect(states.last?.state == .compensated)
        #expect(states.contains { $0.state == .compensating && $0.step == "take-items" })
        try await running.stop()
        try await world.shutdown()
    }

    @Test func aSilentStepIsSentAgainAsTheSameEventThenUndoneWithTheOthersAndASilentUndoParksUntilAPersonDecides() async throws {
        let world = try await PurchaseWorld()
        try world.startShelf()
        try world.startWallet()  // no courier yet: dispatch and its undo go unanswered
        let saga = purchaseSaga(dispatchTimeout: .milliseconds(300), dispatchAttempts: 2)
        let running = RunningOrchestrator(try world.makeOrchestrator(saga))
        try await running.orchestrator.start(saga, id: "p-3", data: Purchase(quantity: 2, amount: 30))

        #expect(await running.reaches("p-3", .parked))
        var instance = try #require(try await running.orchestrator.instance("p-3"))
        #expect(instance.step == "dispatch")
        #expect(instance.reason == "undoing dispatch did not answer (2 attempts)")
        #expect(instance.completedSteps == ["take-items", "charge"])
        let commands = try await world.client.allRecords(of: Dispatch.topic).compactMap { try EventMetadata(headers: $0.headers) }
        try #require(commands.map(\.eventType) == ["dispatch", "dispatch", "cancel-dispatch", "cancel-dispatch"])
        #expect(commands[0].eventID == commands[1].eventID && commands[2].eventID == commands[3].eventID,
                "a command sent again is the same event, so the participant's inbox knows it")
        #expect(instance.history.contains { $0.change == "dispatch timed out; undoing dispatch" })
        #expect(try await world.shelfQuantity() == 8, "take-items stays done while the saga is parked")

        // A person asks for a retry; the courier is back and answers both its commands.
        try world.startCourier()
        try await world.decide(.retry, "p-3")
        #expect(await running.reaches("p-3", .compensated))
        instance = try #require(try await running.orchestrator.instance("p-3"))
        #expect(instance.compensatedSteps == ["dispatch", "take-items"], "undone newest first; the charge has no undo")
        #expect(try await world.shelfQuantity() == 10)
        #expect(try await world.delivery("p-3") == true, "cancelled, even though the dispatch itself was delivered too")
        #expect(instance.history.contains { $0.change == "retry requested by ops" })
        // The courier's answer to the dispatch (long given up on) changed nothing.
        #expect(await eventually { running.orchestrator.statistics.staleReplies >= 1 })
        #expect(try await running.state(of: "p-3") == .compensated)

        // A decision about a saga that ended is recorded and ignored.
        try await world.decide(.compensate, "p-3")
        #expect(await eventually {
            (try? await running.orchestrator.instance("p-3"))?.history.last?.change == "compensate requested by ops: ignored, the saga is compensated"
        })
        #expect(running.orchestrator.statistics.parked >= 1 && running.orchestrator.statistics.timeouts >= 4)
        try await running.stop()
        try await world.shutdown()
    }

    @Test func aPersonCanCompensateARunningSagaAndALateReplyChangesNothing() async throws {
        let world = try await PurchaseWorld()
        try world.startShelf()  // no wallet: the charge waits
        let running = RunningOrchestrator(try world.makeOrchestrator(purchaseSaga()))
        try await running.orchestrator.start(purchaseSaga(), id: "p-4", data: Purchase(quantity: 5, amount: 20))
        #expect(await running.reaches("p-4", .running, step: "charge"))

        try await world.decide(.compensate, "p-4")
        #expect(await running.reaches("p-4", .compensated))
        // The wallet comes back and answers the charge it was sent: it charges (its own business),
        // but the saga is over and stays compensated.
        try world.startWallet()
        #expect(await eventually { running.orchestrator.statistics.staleReplies >= 1 })
        let instance = try #require(try await running.orchestrator.instance("p-4"))
        #expect(instance.state == .compensated && instance.compensatedSteps == ["take-items"])
        #expect(instance.reason == "compensate requested by ops")
        #expect(try await world.shelfQuantity() == 10)
        try await running.stop()
        try await world.shutdown()
    }

    @Test func anInstanceSurvivesRestartsOfItsOrchestratorMidStepAndMidCompensation() async throws {
        let world = try await PurchaseWorld(balance: 5)
        try world.startShelf()
        var running = RunningOrchestrator(try world.makeOrchestrator(purchaseSaga()))
        try await running.orchestrator.start(purchaseSaga(), id: "p-5", data: Purchase(quantity: 1, amount: 50))
        #expect(await running.reaches("p-5", .running, step: "charge"))

        // Mid-step: the orchestrator stops while the charge is out; a new one picks the reply up.
        try await running.stop()
        try await world.stop("shelf")
        running = RunningOrchestrator(try world.makeOrchestrator(purchaseSaga()))
        try world.startWallet()  // refuses: 5 is short of 50
        #expect(await running.reaches("p-5", .compensating, step: "take-items"))

        // Mid-compensation: the undo is out, the shelf is down, the orchestrator stops again.
        try await running.stop()
        running = RunningOrchestrator(try world.makeOrchestrator(purchaseSaga()))
        try world.startShelf()
        #expect(await running.reaches("p-5", .compensated))
        #expect(try await world.shelfQuantity() == 10)
        let instance = try #require(try await running.orchestrator.instance("p-5"))
        #expect(instance.history.map(\.state) == [.running, .running, .compensating, .compensated])
        let returns = try await world.client.allRecords(of: ReturnItems.topic).compactMap { try EventMetadata(headers: $0.headers) }
            .filter { $0.eventType == ReturnItems.eventType }
        #expect(Set(returns.map(\.eventID)).count == 1, "one undo: a restart may publish its outbox row again, as the same event")
        try await running.stop()
        try await world.shutdown()
    }

    @Test func startingTwiceOrAnUnregisteredDefinitionIsRefusedAndNothingIsSent() async throws {
        let world = try await PurchaseWorld()
        let orchestrator = try world.makeOrchestrator(purchaseSaga())
        try await orchestrator.start(purchaseSaga(), id: "p-6", data: Purchase(quantity: 1, amount: 1))
        await #expect(throws: SpoolError.self) {
            try await orchestrator.start(purchaseSaga(), id: "p-6", data: Purchase(quantity: 9, amount: 9))
        }
        let other = SagaDefinition<Purchase>(name: "other", steps: [
            .init("take-items", send: { TakeItems(quantity: $0.quantity) }, onReply: { _, _ in .success }),
        ])
        let error = await #expect(throws: SpoolError.self) { try await orchestrator.start(other, id: "p-7", data: Purchase(quantity: 1, amount: 1)) }
        #expect(error?.message.contains("not registered") == true)
        let unsent = try await orchestrator.participant.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM spool_outbox") }
        #expect(unsent == 2, "one command and one state change, for p-6 only")
        try await world.shutdown()
    }
}
