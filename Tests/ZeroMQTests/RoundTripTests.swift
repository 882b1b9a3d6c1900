import Testing
import ZeroMQ

@Suite struct RoundTripTests {
    @Test(.timeLimit(.minutes(1)), arguments: Transport.allCases)
    func dealerAndRouterExchangeMultipartMessages(over transport: Transport) throws {
        let context = try Context()
        let router = try Socket(context: context, type: .router)
        try router.bind(transport.bindEndpoint)
        let dealer = try Socket(context: context, type: .dealer)
        let dealerID = Array("dealer-1".utf8)
        try dealer.setRoutingID(dealerID)
        try dealer.connect(router.lastEndpoint)

        let large = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        try dealer.send([Array("hello".utf8), [], large])

        let request = try #require(try router.receive(within: 5_000))
        #expect(request.map(\.count) == [dealerID.count, 5, 0, large.count])
        #expect(request[0].bytes == dealerID)
        #expect(request[1].bytes == Array("hello".utf8))
        #expect(request[3].withUnsafeBytes { $0.elementsEqual(large) })
        #expect(request[1].property("No-Such-Property") == nil)
        if transport == .tcp {
            #expect(request[1].property("Socket-Type") == "DEALER")
            #expect(request[1].property("Peer-Address") == "127.0.0.1")
        }

        // The received frames are reused, twice: sending must not consume them.
        let reply = [request[0], Frame(Array("reply".utf8)), Frame([UInt8]()), request[3]]
        try router.send(reply)
        try router.send(reply)
        for _ in 0..<2 {
            let answer = try #require(try dealer.receive(within: 5_000))
            #expect(answer.map(\.count) == [5, 0, large.count])
            #expect(answer[0].bytes == Array("reply".utf8))
            #expect(answer[2].withUnsafeBytes { $0.elementsEqual(large) })
        }
    }
}
