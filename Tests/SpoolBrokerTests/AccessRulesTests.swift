import SpoolBroker
import SpoolWire
import Testing

@Suite struct AccessRulesTests {
    static let rules = AccessRules(rules: [
        .init(pattern: "orders", grants: [.produce: ["order-service"], .consume: ["stock", "notification"]]),
        .init(pattern: "payments.*", grants: [.produce: ["billing"], .consume: ["*"]]),
        .init(pattern: "payments.audit*", grants: [.consume: ["auditor"]]),
        .init(pattern: "*", grants: [.admin: ["ops"]]),
    ])

    @Test func theMostSpecificPatternDecidesAlone() throws {
        func allows(_ client: String?, _ operation: AccessOperation, _ topic: String) throws -> Bool {
            Self.rules.allows(client, operation, on: try TopicName(topic))
        }
        #expect(try allows("order-service", .produce, "orders"))
        #expect(try !allows("stock", .produce, "orders"))
        #expect(try allows("stock", .consume, "orders"))
        #expect(try !allows("ops", .admin, "orders"), "the exact rule governs orders; * does not add to it")
        #expect(try allows("anyone", .consume, "payments.eu"), "* in a list is every client")
        #expect(try !allows("anyone", .consume, "payments.audit-log"), "the longer prefix wins")
        #expect(try allows("auditor", .consume, "payments.audit-log"))
        #expect(try allows("ops", .admin, "inventory"))
        #expect(try !allows("ops", .produce, "inventory"))
        #expect(try !allows(nil, .consume, "payments.eu"), "a client without an identity gets nothing")
    }

    @Test func aRefusedRequestNamesTheClientTheTopicAndTheOperationAndChangesNothing() throws {
        let h = try Harness { $0.accessRules = Self.rules }
        func send(_ body: some WireMessage, batch: [UInt8]? = nil, as identity: String?) throws -> Reply {
            let header = FrameHeader(opCode: type(of: body).opCode, correlationID: h.correlationID())
            let frames = [header.encoded(), body.encoded()] + (batch.map { [$0] } ?? [])
            return try #require(try Reply.decode(h.broker.handle(client: h.client, identity: identity, frames: frames, now: h.now)).only)
        }
        let batch = h.randomBatch().0
        #expect(try send(CreateTopicRequest(name: "orders"), as: "ops").header.errorCode == .notAuthorized)
        #expect(try send(CreateTopicRequest(name: "inventory"), as: "ops").header.errorCode == .none)
        _ = try send(ProduceRequest(topic: "orders", partition: 0), batch: batch, as: "order-service").body(ProduceResponse.self)
        let refused = try send(ProduceRequest(topic: "orders", partition: 0), batch: batch, as: "stock")
        #expect(refused.header.errorCode == .notAuthorized)
        let message = try refused.error().message
        #expect(message.contains("'stock'") && message.contains("produce") && message.contains("'orders'"), "\(message)")
        let fetched = try send(FetchRequest(topic: "orders", partition: 0, offset: 0), as: "stock")
        #expect(try fetched.fetchedRecords().count == Int(try batch.withUnsafeBytes { try RecordBatch.readHeader($0) }.recordCount),
                "only the granted produce was stored")
        #expect(try send(JoinGroupRequest(group: "g", topics: ["orders", "inventory"]), as: "stock").header.errorCode == .notAuthorized,
                "joining needs consume on every topic")
        #expect(try send(FetchRequest(topic: "orders", partition: 0, offset: 0), as: nil).header.errorCode == .notAuthorized)
    }
}
