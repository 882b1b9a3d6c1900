import Dispatch
import Testing
import ZeroMQ

@Suite struct PollerTests {
    @Test(.timeLimit(.minutes(1)))
    func wakesOnSignalFromAnotherThread() throws {
        let signal = try WakeupSignal()
        var poller = Poller()
        let index = poller.add(fileDescriptor: signal.fileDescriptor)
        #expect(try poller.poll(timeoutMilliseconds: 0) == 0)

        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { signal.signal() }
        #expect(try poller.poll(timeoutMilliseconds: 10_000) == 1)
        #expect(poller.isReadable(index))

        signal.drain()
        #expect(try poller.poll(timeoutMilliseconds: 0) == 0)
        #expect(!poller.isReadable(index))
    }

    @Test(.timeLimit(.minutes(1)))
    func wakesWhenSocketBecomesReadable() throws {
        let context = try Context()
        let endpoint = "inproc://\(uniqueName())"
        let receiver = try Socket(context: context, type: .pair)
        try receiver.bind(endpoint)
        let sender = try Socket(context: context, type: .pair)
        try sender.connect(endpoint)

        var poller = Poller()
        let readIndex = poller.add(receiver)
        let writeIndex = poller.add(sender, events: .writable)
        #expect(try poller.poll(timeoutMilliseconds: 5_000) == 1)
        #expect(!poller.isReadable(readIndex))
        #expect(poller.isWritable(writeIndex))
        #expect(try !receiver.canReceive)

        try sender.send([[42]])
        #expect(try poller.poll(timeoutMilliseconds: 5_000) == 2)
        #expect(poller.isReadable(readIndex))
        #expect(try receiver.canReceive)
    }

    @Test(.timeLimit(.minutes(1)))
    func timeoutReturnsZero() throws {
        let signal = try WakeupSignal()
        var poller = Poller()
        let index = poller.add(fileDescriptor: signal.fileDescriptor)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try poller.poll(timeoutMilliseconds: 100) == 0)
        #expect(clock.now - start >= .milliseconds(90))
        #expect(!poller.isReadable(index))
    }
}
