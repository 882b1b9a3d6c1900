import Foundation
import GRDB
import Spool
import SpoolSaga
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool saga list|show|retry|compensate` against a real spoold and an orchestrator on a
    /// real SQLite file.
    @Suite struct CLISagaStateTests {
        struct Ship: SagaCommand {
            typealias Reply = Shipped
            static let eventType = "ship"
            static let topic = "carrier.commands"
        }

        struct Shipped: SpoolEvent {
            static let eventType = "shipped"
            static let topic = "shop.replies"
        }

        struct CancelShipping: SagaCommand {
            typealias Reply = ShippingCancelled
            static let eventType = "cancel-shipping"
            static let topic = "carrier.commands"
        }

        struct ShippingCancelled: SpoolEvent {
            static let eventType = "shipping-cancelled"
            static let topic = "shop.replies"
        }

        struct Parcel: Codable, Sendable {
            var weight: Int
        }

        /// One step, shipping, undone by cancelling it; `timeout` per send, one send each.
        static func shipping(_ name: String, timeout: Duration) -> SagaDefinition<Parcel> {
            SagaDefinition(name: name, steps: [
                .init("ship", timeout: timeout, attempts: 1, send: { _ in Ship() }, onReply: { _, _ in .success })
                    .compensated { _ in CancelShipping() },
            ])
        }

        @Test(.timeLimit(.minutes(4)))
        func listShowAndAPersonsRetryOfAParkedSaga() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-saga-states")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            let client = try await daemon.makeClient()
            defer { client.close() }
            let configuration = SagaConfiguration(pollInterval: .milliseconds(50), consumer: ConsumerConfiguration(sessionTimeout: .seconds(2)))
            let shop = try SagaParticipant(name: "shop", client: client, database: try DatabasePool(path: directory.appending("shop.sqlite")),
                                           configuration: configuration)
            let orchestrator = Orchestrator(participant: shop)
            let fast = Self.shipping("ship-fast", timeout: .milliseconds(200)), slow = Self.shipping("ship-slow", timeout: .seconds(120))
            orchestrator.register(fast)
            orchestrator.register(slow)
            let running = Task { try await orchestrator.run() }
            // No carrier yet: the fast saga's shipping and its undo go unanswered and it parks;
            // the slow one waits.
            try await orchestrator.start(fast, id: "parcel-1", data: Parcel(weight: 3))
            try await orchestrator.start(slow, id: "parcel-2", data: Parcel(weight: 5))
            #expect(await eventually { (try? await orchestrator.instance("parcel-1"))?.state == .parked })
            #expect(await eventually {  // parcel-1 started, compensating, parked; parcel-2 started
                (try? await client.readToEnd(of: SagaStateChanged.topic, partition: 0).count) == 4
            })

            let list = try await runSpool(["saga", "list"] + broker)
            #expect(list.termination == .exited(0), "\(list)")
            let rows = list.stdoutLines.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
            try #require(rows.count == 3, "\(list.stdoutText)")
            #expect(rows[0] == ["SAGA", "DEFINITION", "STATE", "STEP", "ATTEMPT", "CHANGED", "REASON"])
            let bySaga = Dictionary(uniqueKeysWithValues: rows.dropFirst().map { ($0[0], $0) })
            #expect(bySaga["parcel-1"].map { Array($0[1...4]) } == ["ship-fast v1", "parked", "ship", "1"])
            #expect(bySaga["parcel-1"]?[6] == "undoing ship did not answer (1 attempt)")
            #expect(bySaga["parcel-2"].map { Array($0[1...4]) + [$0[6]] } == ["ship-slow v1", "running", "ship", "1", "-"])

            let parked = try await runSpool(["saga", "list", "--state", "parked,compensated"] + broker)
            #expect(parked.stdoutLines.dropFirst().map { $0.prefix { $0 != "\t" } } == ["parcel-1"], "\(parked.stdoutText)")
            let bad = try await runSpool(["saga", "list", "--state", "stuck"] + broker)
            #expect(bad.termination != .exited(0) && bad.stderr.contains("unknown saga state 'stuck'"), "\(bad)")

            let show = try await runSpool(["saga", "show", "parcel-1"] + broker)
            #expect(show.termination == .exited(0), "\(show)")
            #expect(show.stdoutLines.prefix(5) == ["saga parcel-1 (ship-fast v1): parked", "step: ship, attempt 1",
                                                   "reason: undoing ship did not answer (1 attempt)", "done: -", "undone: -"], "\(show.stdoutText)")
            let history = show.stdoutLines.drop { $0 != "history:" }.dropFirst().map { $0.split(separator: "\t").map(String.init) }
            #expect(history.map { Array($0.dropFirst(2)) } == [
                ["running", "ship", "started"], ["compensating", "ship", "ship timed out; undoing ship"],
                ["parked", "ship", "parked: undoing ship did not answer (1 attempt)"],
            ], "\(show.stdoutText)")
            let showSlow = try await runSpool(["saga", "show", "parcel-2"] + broker)
            #expect(showSlow.stdoutLines.contains { $0.hasPrefix("reply due: ") && $0.contains("(in 1") }, "\(showSlow.stdoutText)")

            let missing = try await runSpool(["saga", "show", "parcel-9"] + broker)
            #expect(missing.termination == .exited(1) && missing.stderr.contains("no state of saga 'parcel-9'"), "\(missing)")
            let early = try await runSpool(["saga", "retry", "parcel-2"] + broker)
            #expect(early.termination == .exited(1) && early.stderr.contains("saga 'parcel-2' is running; retry applies to a saga that is parked"),
                    "\(early)")

            // A person retries the parked undo: sent again, unanswered again, parked again.
            let retry = try await runSpool(["saga", "retry", "parcel-1", "--by", "alice"] + broker)
            #expect(retry.termination == .exited(0), "\(retry)")
            #expect(retry.stdoutText.contains("asked for retry of saga parcel-1 (parked)"), "\(retry)")
            #expect(await eventually {
                let changes = (try? await orchestrator.instance("parcel-1"))?.history.map(\.change) ?? []
                return changes.suffix(2) == ["retry requested by alice", "parked: undoing ship did not answer (1 attempt)"]
            })
            // The carrier comes up and answers what it was sent: the undo ends the parked saga,
            // the shipping ends the slow one.
            let carrier = try SagaParticipant(name: "carrier", client: client,
                                              database: try DatabasePool(path: directory.appending("carrier.sqlite")), configuration: configuration)
            carrier.handle(Ship.self) { _, _ in Shipped() }
            carrier.handle(CancelShipping.self) { _, _ in ShippingCancelled() }
            let carrierTask = Task { try await carrier.run() }
            #expect(await eventually { (try? await orchestrator.instance("parcel-1"))?.state == .compensated })
            #expect(await eventually { (try? await orchestrator.instance("parcel-2"))?.state == .completed })

            let late = try await runSpool(["saga", "compensate", "parcel-2"] + broker)
            #expect(late.termination == .exited(1) && late.stderr.contains("saga 'parcel-2' is completed"), "\(late)")
            let json = try await runSpool(["saga", "show", "parcel-1", "--format", "json"] + broker)
            let last = try JSONSerialization.jsonObject(with: Data(try #require(json.stdoutLines.last).utf8)) as? [String: Any]
            #expect(last?["state"] as? String == "compensated" && last?["compensatedSteps"] as? [String] == ["ship"], "\(json.stdoutText)")
            carrierTask.cancel()
            running.cancel()
            try await carrierTask.value
            try await running.value
        }

        struct CourierRequested: SpoolEvent {
            static let eventType = "courier-requested"
        }

        struct CourierCancelled: SpoolEvent {
            static let eventType = "courier-cancelled"
        }

        struct Refused: SpoolEvent {
            static let eventType = "card-refused"
        }

        @Test(.timeLimit(.minutes(4)))
        func rulesPrintsTheSupervisorsTableAndAPersonCompensatesAnEscalatedSaga() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-supervisor")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let broker = ["--broker", daemon.endpoint]
            let client = try await daemon.makeClient()
            defer { client.close() }
            let configuration = SagaConfiguration(pollInterval: .milliseconds(50), consumer: ConsumerConfiguration(sessionTimeout: .seconds(2)))
            let courier = try SagaParticipant(name: "courier", client: client,
                                              database: try DatabasePool(path: directory.appending("courier.sqlite")), configuration: configuration)
            courier.on(CourierRequested.self) { _, _ in throw PermanentFailure("no courier on duty") }
            let supervisor = Supervisor(participant: try SagaParticipant(name: "order-supervisor", client: client,
                                                                         database: try DatabasePool(path: directory.appending("supervisor.sqlite")),
                                                                         configuration: configuration),
                                        flow: "order", rules: [
                .failed(Refused.self, from: "balance", .compensate([.send { _ in CourierCancelled() }])),
                .deadLettered(CourierRequested.self, by: "courier", .escalate(compensation: [.send { _ in CourierCancelled() }])),
            ])
            let services = [Task { try await courier.run() }, Task { try await supervisor.run() }]
            var request = try EventEnvelope(CourierRequested(), correlationID: "order-7", source: "order").record()
            request.headers.append(RecordHeader(name: EventHeaderName.role, string: EventRole.success.rawValue))
            try await client.publish(to: CourierRequested.topic, records: [request])
            #expect(await eventually { (try? await supervisor.saga("order-7"))?.state == .parked })

            let rules = try await runSpool(["saga", "rules"] + broker)
            #expect(rules.termination == .exited(0), "\(rules)")
            #expect(rules.stdoutLines.first?.hasPrefix("supervisor order-supervisor (flow order), rules of ") == true, "\(rules.stdoutText)")
            #expect(Array(rules.stdoutLines.dropFirst()) == [
                "SERVICE\tFAILURE\tACTION",
                "balance\tevent card-refused\tcompensate: courier-cancelled",
                "courier\tcourier-requested dead-lettered\tescalate; on request compensate: courier-cancelled",
            ], "\(rules.stdoutText)")
            let none = try await runSpool(["saga", "rules", "--supervisor", "nobody"] + broker)
            #expect(none.termination == .exited(1) && none.stderr.contains("supervisor 'nobody' has published no rules"), "\(none)")

            #expect(await eventually {
                let list = try? await runSpool(["saga", "list", "--state", "parked"] + broker)
                return list?.stdoutLines.dropFirst().map { $0.split(separator: "\t").prefix(4).joined(separator: " ") }
                    == ["order-7 order v1 parked courier: courier-requested"]
            })
            let compensate = try await runSpool(["saga", "compensate", "order-7", "--by", "bob"] + broker)
            #expect(compensate.termination == .exited(0), "\(compensate)")
            #expect(await eventually { (try? await supervisor.saga("order-7"))?.state == .compensated })
            #expect(await eventually { (try? await client.offset(of: CourierCancelled.topic, partition: 0, .latest)) == 1 })
            let trace = try await runSpool(["saga", "trace", "order-7"] + broker)
            #expect(trace.stdoutText.contains("courier-cancelled") && trace.stdoutText.contains(SagaStateChanged.topic), "\(trace.stdoutText)")
            for service in services { service.cancel() }
            for service in services { try await service.value }
        }
    }
}
