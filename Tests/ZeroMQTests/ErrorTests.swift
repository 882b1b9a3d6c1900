import Glibc
import Testing
import ZeroMQ

@Suite struct ErrorTests {
    @Test func bindToMalformedEndpointThrowsReadableError() throws {
        let socket = try Socket(context: Context(), type: .router)
        let error = try #require(throws: ZeroMQError.self) { try socket.bind("tcp://nonsense") }
        #expect(error.errno == EINVAL)
        #expect(error.operation == "zmq_bind(tcp://nonsense)")
        #expect(error.message == "Invalid argument")
        #expect(error.description == "zmq_bind(tcp://nonsense): Invalid argument")
        #expect(!error.isTerminated && !error.isHostUnreachable)
    }

    @Test func bindingTwiceToSamePortThrowsAddressInUse() throws {
        let context = try Context()
        let first = try Socket(context: context, type: .router)
        try first.bind("tcp://127.0.0.1:*")
        let endpoint = try first.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix("*"))

        let second = try Socket(context: context, type: .router)
        let error = try #require(throws: ZeroMQError.self) { try second.bind(endpoint) }
        #expect(error.errno == EADDRINUSE)
    }

    @Test func mandatoryRouterSendToUnknownPeerThrowsHostUnreachable() throws {
        let router = try Socket(context: Context(), type: .router)
        try router.setRouterMandatory(true)
        let error = try #require(throws: ZeroMQError.self) {
            try router.send([Array("nobody".utf8), [1]])
        }
        #expect(error.isHostUnreachable)
    }

    @Test func receiveWithoutWaitingOnEmptySocketReturnsNil() throws {
        let socket = try Socket(context: Context(), type: .pull)
        try socket.bind("inproc://\(uniqueName())")
        #expect(try socket.receive(dontWait: true) == nil)
    }

    @Test func sendWithoutWaitingReturnsFalseWithoutPeer() throws {
        let dealer = try Socket(context: Context(), type: .dealer)
        #expect(try dealer.send([[1]], dontWait: true) == false)
        #expect(throws: ZeroMQError.self) { try dealer.send([] as [Frame]) }
    }
}
