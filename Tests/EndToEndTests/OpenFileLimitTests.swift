import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// The open-file budget: spoold raises its soft limit to the hard one, says at start when its
    /// file cache leaves too little for clients, and serves far more partitions than it has
    /// descriptors.
    @Suite struct OpenFileLimitTests {
        /// `sh -c 'ulimit <flags> <n>; exec spoold …'`.
        private static func launcher(_ flags: String, _ limit: Int) -> [String] {
            ["/bin/sh", "-c", "ulimit \(flags) \(limit) && exec \"$0\" \"$@\""]
        }

        @Test(.timeLimit(.minutes(3)))
        func raisesTheSoftLimitAndWarnsWithTheNumberWhenTheBudgetIsShort() async throws {
            var hard = rlimit()
            try #require(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &hard) == 0 && hard.rlim_max > 600, "this test needs a hard limit above 600")
            let directory = try TemporaryDirectory(prefix: "spool-e2e-nofile")
            let raised = try await Daemon.start(dataDirectory: directory.appending("data"), launcher: Self.launcher("-Sn", 100))
            defer { raised.cleanUp() }
            #expect(raised.stderr.contains("raisedFrom=100") && raised.stderr.contains("open-file budget"), "\(raised.stderr)")
            try await raised.terminate()

            // Under a limit of 300 the cache takes half (150), leaving 150 of the 256 kept for clients: 406 are needed.
            let short = try await Daemon.start(dataDirectory: directory.appending("data"), launcher: Self.launcher("-n", 300))
            defer { short.cleanUp() }
            #expect(short.stderr.contains("open-file limit is low") && short.stderr.contains("to at least 406"), "\(short.stderr)")
            try await short.terminate()

            let configured = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--max-open-files", "40"],
                                                    launcher: Self.launcher("-n", 300))
            defer { configured.cleanUp() }
            #expect(configured.stderr.contains("maxOpenFiles=40") && !configured.stderr.contains("limit is low"), "\(configured.stderr)")
        }

        /// Two topics under `fsync: always`, the rest `never` (a kill -9 loses no page cache): the
        /// same path for the cache, and the run stays short.
        private static let topics = (0..<20).map { (name: "many-\($0)", fsync: $0 < 2 ? "always" : "never") }
        private static let partitions: Int32 = 100
        private static let recordsPerPartition = 4
        /// Two records of this size fill a 4 KiB segment: every partition gets a sealed segment.
        private static let valueBytes = 1_500

        private static func value(topic: Int, partition: Int32, record: Int) -> [UInt8] {
            let label = Array("\(topic)/\(partition)/\(record)/".utf8)
            return label + [UInt8](repeating: UInt8(ascii: "x"), count: valueBytes - label.count)
        }

        /// Thousands of partitions, each with a sealed segment, under a hard limit of 256
        /// descriptors: created, written, read back, and read back again after kill -9 and after a
        /// clean restart, without "Too many open files" anywhere.
        @Test(.timeLimit(.minutes(10)))
        func thousandsOfPartitionsLiveUnderALimitOf256Descriptors() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-partitions")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), launcher: Self.launcher("-n", 256))
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient(ClientConfiguration(requestTimeout: .seconds(60)))
            defer { client.close() }
            for topic in Self.topics {
                try await client.createTopic(topic.name, partitions: Self.partitions, settings: ["segment.bytes": "4096", "fsync": topic.fsync])
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                var started = 0
                for (number, topic) in Self.topics.enumerated() {
                    for partition in 0..<Self.partitions {
                        if started >= 64 { try await group.next() }
                        started += 1
                        group.addTask {
                            for record in 0..<Self.recordsPerPartition {
                                _ = try await client.publish(to: topic.name, partition: partition,
                                                             value: Self.value(topic: number, partition: partition, record: record))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await expectEveryRecord(client)
            let pid = try #require(daemon.current?.pid)
            let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
            print("\(Self.topics.count * Int(Self.partitions)) partitions served with \(descriptors) descriptors open")

            #expect(try await daemon.kill9() == .signalled(SIGKILL))
            try await daemon.start()
            let afterCrash = try await daemon.makeClient(ClientConfiguration(requestTimeout: .seconds(60)))
            try await expectEveryRecord(afterCrash)
            afterCrash.close()
            try await daemon.terminate()
            try await daemon.start()
            let afterStop = try await daemon.makeClient(ClientConfiguration(requestTimeout: .seconds(60)))
            defer { afterStop.close() }
            try await expectEveryRecord(afterStop)
            for run in daemon.runs {
                #expect(!run.stderr.text.contains("Too many open files"), "\(run.stderr.text.suffix(2000))")
            }
        }

        /// Reads every partition of every topic from offset 0 and checks its records, in order.
        private func expectEveryRecord(_ client: SpoolClient) async throws {
            for (number, topic) in Self.topics.enumerated() {
                let description = try await client.describeTopic(topic.name)
                #expect(description.partitions.allSatisfy { $0.segmentCount >= 2 }, "\(topic.name): every partition has a sealed segment")
                for partition in 0..<Self.partitions {
                    let records = try await client.records(of: topic.name, partition: partition, fromOffset: 0)
                    let expected = (0..<Self.recordsPerPartition).map { Self.value(topic: number, partition: partition, record: $0) }
                    #expect(records.map(\.value) == expected, "\(topic.name)/\(partition)")
                }
            }
        }
    }
}
