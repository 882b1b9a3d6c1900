import Testing
import ZeroMQ

@Suite struct MonitorTests {
    @Test(.timeLimit(.minutes(1)))
    func connectingToClosedPortReportsRetries() throws {
        let context = try Context()
        // Find a free port, then close it again.
        let placeholder = try Socket(context: context, type: .router)
        try placeholder.bind("tcp://127.0.0.1:*")
        let endpoint = try placeholder.lastEndpoint
        try placeholder.unbind(endpoint)

        let dealer = try Socket(context: context, type: .dealer)
        try dealer.setReconnectInterval(milliseconds: 50, max: 0)
        let monitor = try dealer.monitor()
        try dealer.connect(endpoint)

        let events = try monitor.collectEvents(within: 10_000) { $0.contains(.connectRetried) }
        let retry = try #require(events.first { $0.kind == .connectRetried }, "events: \(events.map(\.kind))")
        #expect(retry.endpoint == endpoint)
        #expect(!events.contains { $0.kind == .handshakeSucceeded })
    }

    @Test(.timeLimit(.minutes(1)))
    func connectingToLiveRouterReportsHandshake() throws {
        let context = try Context()
        let router = try Socket(context: context, type: .router)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint

        let dealer = try Socket(context: context, type: .dealer)
        let monitor = try dealer.monitor(events: [.connected, .handshakeSucceeded])
        try dealer.connect(endpoint)

        let events = try monitor.collectEvents(within: 10_000) {
            $0.isSuperset(of: [.connected, .handshakeSucceeded])
        }
        #expect(events.map(\.kind) == [.connected, .handshakeSucceeded])
        #expect(events.allSatisfy { $0.endpoint == endpoint })
    }
}
