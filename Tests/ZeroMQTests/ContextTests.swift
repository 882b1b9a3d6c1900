import Dispatch
import Testing
import ZeroMQ

@Suite struct ContextTests {
    @Test(.timeLimit(.minutes(1)))
    func shutdownMakesBlockedReceiveOnAnotherThreadThrowTerminated() throws {
        let context = try Context()
        let thrown = Shared<ZeroMQError?>(nil)
        let bound = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            do throws(ZeroMQError) {
                let socket = try Socket(context: context, type: .pull)
                try socket.bind("inproc://\(uniqueName())")
                bound.signal()
                _ = try socket.receive()
            } catch {
                thrown.update { $0 = error }
            }
            finished.signal()
        }
        try #require(bound.wait(timeout: .now() + 10) == .success)
        // Let the receive block first (if it has not yet, it fails the same way).
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) {
            context.shutdown()
            context.shutdown()
        }
        try #require(finished.wait(timeout: .now() + 10) == .success)

        let error = try #require(thrown.value)
        #expect(error.isTerminated)
        let refused = try #require(throws: ZeroMQError.self) { try Socket(context: context, type: .pair) }
        #expect(refused.isTerminated)
    }

    @Test func reportsLibraryVersionAndCapabilities() {
        #expect(ZeroMQ.version.major == 4)
        #expect(ZeroMQ.has("ipc"))
        #expect(!ZeroMQ.has("no-such-capability"))
    }
}
