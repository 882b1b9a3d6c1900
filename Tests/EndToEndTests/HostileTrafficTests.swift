import Foundation
import Logging
import Spool
import SpoolTesting
import SpoolWire
import Testing
import ZeroMQ

extension EndToEndTests {
    /// Many clients send malformed, oversized and never-read traffic while a well-behaved producer
    /// and consumer work: the good records arrive intact and the broker's memory stays bounded.
    @Suite struct HostileTrafficTests {
        /// Peak resident memory of a process (`VmHWM`), in bytes.
        private static func peakResidentBytes(_ pid: Int32) -> Int? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                  let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            else { return nil }
            return kilobytes * 1024
        }

        /// One hostile message of kind `index % 7`.
        private static func hostileMessage(_ index: Int, using rng: inout SeededGenerator) -> [[UInt8]] {
            let header = { (op: OpCode) in FrameHeader(opCode: op, correlationID: UInt64(index)).encoded() }
            switch index % 7 {
            case 0: return [rng.bytes(rng.int(0...64))]                                          // no valid header
            case 1: return [header(.produce), rng.bytes(rng.int(0...40)), rng.bytes(rng.int(0...300))]  // garbage body and batch
            case 2: return [header(.metadata), [0xFF, 0xFF, 0xFF, 0x7F]]                          // an absurd count
            case 3: return [header(.produce), ProduceRequest(topic: "good", partition: 0).encoded(), [UInt8](repeating: 7, count: 1_500_000)]  // oversized batch
            case 4: return [header(.fetch), FetchRequest(topic: "../../etc", partition: 0, offset: 0).encoded()]  // hostile name
            case 5: return [header(.joinGroup), rng.bytes(rng.int(0...100))]
            default: return [header(OpCode(rawValue: 200)), rng.bytes(10)]                       // unknown operation
            }
        }

        @Test(.timeLimit(.minutes(5)))
        func goodTrafficSurvivesABurstOfHostileFramesFromManyClients() async throws {
            var rng = SeededGenerator.logged("goodTrafficSurvivesABurstOfHostileFramesFromManyClients")
            let directory = try TemporaryDirectory(prefix: "spool-e2e-hostile")
            let config = directory.appending("spoold.yaml")
            try "max.frame.bytes: 2097152\n".write(toFile: config, atomically: true, encoding: .utf8)
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--config", config])
            defer { daemon.cleanUp() }
            let pid = try #require(daemon.current?.pid)
            let baseline = try #require(Self.peakResidentBytes(pid))

            // The well-behaved pair.
            let client = try await daemon.makeClient(ClientConfiguration(requestTimeout: .seconds(20)))
            defer { client.close() }
            try await client.createTopic("good", partitions: 1)
            let collected = RecordCollector()
            let reader = Task {
                for try await record in client.records(from: "good", startingAt: .earliest) {
                    collected.append(record)
                    if collected.count == 5_000 { break }
                }
            }
            let producer = try Producer(client: client, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let values = (0..<5_000).map { "good-\($0)" }

            // Twenty hostile clients, each on its own connection, never reading a reply; the last
            // frame of some is larger than max.frame.bytes, which makes ZeroMQ drop the connection.
            let context = try Context()
            var hostile: [Socket] = []
            for _ in 0..<20 {
                let socket = try Socket(context: context, type: .dealer)
                try socket.setSendHighWaterMark(0)
                try socket.connect(daemon.endpoint)
                hostile.append(socket)
            }
            var sent = 0
            for (number, value) in values.enumerated() {
                try await producer.enqueue(to: "good", key: Array(value.utf8), value: Array(value.utf8))
                if number % 25 == 0 {
                    for socket in hostile {
                        _ = try socket.send(Self.hostileMessage(sent, using: &rng), dontWait: true)
                        sent += 1
                    }
                }
            }
            for socket in hostile.prefix(5) { _ = try socket.send([[UInt8](repeating: 1, count: 3_000_000)], dontWait: true) }
            try await producer.close()
            #expect(await eventually(timeout: .seconds(60)) { collected.count >= 5_000 }, "the consumer got \(collected.count) of 5,000")
            reader.cancel()
            #expect(collected.records.map { String(decoding: $0.value, as: UTF8.self) } == values, "the good records, intact and in order")
            #expect(collected.records.map(\.offset) == Array(0..<5_000))
            #expect(daemon.current?.isRunning == true, "the broker is alive")
            #expect(try await client.offset(of: "good", .latest) == 5_000, "no hostile batch was stored")

            let peak = try #require(Self.peakResidentBytes(pid))
            print("hostile burst: \(sent) hostile messages (\(sent / 7) of them 1.5 MB batches) from 20 clients; spoold peak RSS \(peak >> 20) MiB (\(baseline >> 20) MiB at start)")
            #expect(peak < 512 << 20, "spoold's peak RSS grew to \(peak >> 20) MiB")
            #expect(daemon.stderr.count < 50_000_000, "the broker's log stays bounded")
            for socket in hostile { try? socket.disconnect(daemon.endpoint) }
        }
    }
}
