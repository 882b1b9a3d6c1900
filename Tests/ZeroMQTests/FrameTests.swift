import Dispatch
import Testing
import ZeroMQ

@Suite struct FrameTests {
    @Test(.timeLimit(.minutes(1)))
    func partiallyFilledFrameSendsOnlyWrittenBytes() throws {
        let frame = Frame(capacity: 4_096) { buffer in
            buffer.copyBytes(from: [1, 2, 3])
            return 3
        }
        #expect(frame.count == 3)
        #expect(frame.bytes.prefix(8) == [1, 2, 3])

        let context = try Context()
        let endpoint = "inproc://\(uniqueName())"
        let receiver = try Socket(context: context, type: .pair)
        try receiver.bind(endpoint)
        let sender = try Socket(context: context, type: .pair)
        try sender.connect(endpoint)
        try sender.send([frame, Frame(capacity: 8) { _ in 0 }])

        let received = try #require(try receiver.receive(within: 5_000))
        #expect(received.map(\.count) == [3, 0])
        #expect(received.first?.bytes.prefix(8) == [1, 2, 3])
    }

    /// Two threads send the same frames at once: every message arrives intact and the frames
    /// stay valid afterwards (sharing by reference count, not handing over).
    @Test(.timeLimit(.minutes(1)))
    func framesCanBeSentFromSeveralThreadsAtOnce() throws {
        let payloads = (0..<2_000).map { round in (0..<100).map { UInt8(truncatingIfNeeded: round &+ $0) } }
        let frames = payloads.map { Frame($0) }
        let context = try Context()
        let failures = Shared<[String]>([])
        let threads = DispatchGroup()
        for _ in 0..<2 {
            DispatchQueue.global().async(group: threads) {
                do throws(ZeroMQError) {
                    let endpoint = "inproc://\(uniqueName())"
                    let receiver = try Socket(context: context, type: .pull)
                    try receiver.bind(endpoint)
                    let sender = try Socket(context: context, type: .push)
                    try sender.connect(endpoint)
                    for (frame, payload) in zip(frames, payloads) {
                        try sender.send([frame])
                        guard let received = try receiver.receive(), received.map(\.bytes) == [payload] else {
                            failures.update { $0.append("wrong message for \(payload.prefix(4))") }
                            return
                        }
                    }
                } catch {
                    failures.update { $0.append(error.description) }
                }
            }
        }
        try #require(threads.wait(timeout: .now() + 50) == .success)
        #expect(failures.value == [])
        #expect(frames.map(\.bytes) == payloads)
    }

    @Test func frameCapacityBodyErrorIsRethrown() {
        struct Failure: Error {}
        #expect(throws: Failure.self) {
            _ = try Frame(capacity: 16) { _ in throw Failure() }
        }
    }

    @Test func framesCopyContiguousAndNonContiguousBytes() {
        #expect(Frame([1, 2, 3].reversed()).bytes == [3, 2, 1])
        let source: [UInt8] = [7, 8]
        let frame = source.withUnsafeBytes { Frame($0) }
        #expect(frame.bytes == [7, 8])
    }
}
