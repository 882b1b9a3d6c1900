import BenchmarkSupport
import Foundation
import Glibc
import Spool
import SpoolServer
import SpoolTesting
import Synchronization

/// Section 7: many partitions on a real `spoold` process, on a data directory of its own. Creates
/// the topics of a ``PartitionLayout`` and writes every partition through the SDK, then stops and
/// reopens the broker (cleanly and with kill -9), reads every partition, times metadata and
/// list-offsets requests and the creation of one more topic. Every reopen is followed by a
/// read-back of a random sample of partitions, and the full read checks every record: a
/// difference throws, so no figure comes from a broker that lost or changed a record.
///
/// Not thread-safe: one task drives it. Call ``killIfRunning()`` in a `defer`.
final class PartitionsBench {
    /// How a broker run ends before the next open.
    enum Ending: Sendable, CaseIterable, CustomStringConvertible {
        /// SIGTERM, and the exit awaited: every file synced and closed.
        case cleanStop
        /// SIGKILL while idle: the next open verifies every segment.
        case kill

        /// The signal that ends the run.
        var signal: Int32 { self == .cleanStop ? SIGTERM : SIGKILL }

        var description: String {
            self == .cleanStop ? "open after a clean stop (SIGTERM, exit awaited)" : "open after kill -9 (SIGKILL while idle)"
        }
    }

    /// A request whose latency the section measures.
    enum Request: Sendable, CaseIterable, CustomStringConvertible {
        /// Metadata of one random topic (`SpoolClient.topics([name])`).
        case topicMetadata
        /// Metadata of every topic (`SpoolClient.topics()`).
        case everyTopicMetadata
        /// The end offset of one random partition (`SpoolClient.offset(of:partition:.latest)`).
        case listOffsets

        var description: String {
            switch self {
            case .topicMetadata: "metadata of one random topic (topics([name]))"
            case .everyTopicMetadata: "metadata of every topic (topics())"
            case .listOffsets: "list offsets: the end of one random partition (offset(of:partition:.latest))"
            }
        }
    }

    /// The topics and records of the case.
    let layout: PartitionLayout
    /// `max.topics` given to spoold in a configuration file when its default leaves no room for
    /// the case's topics and the extra ones; nil when spoold runs on its embedded defaults.
    let raisedTopicLimit: Int?
    private let executable: String
    private let directory: BenchDirectory
    private let caseDirectory: String
    private let dataDirectory: String
    private let configFile: String?
    private let clientCount: Int
    private let inFlight: Int
    private let sampleSize: Int
    private let progress: BenchmarkProgress
    private var broker: BrokerProcess?

    /// A case of `layout` on spoold at `executable`, in a fresh subdirectory of `directory`;
    /// `extraTopics` more topics will be created after the case's own. Writes and reads run on
    /// `clientCount` clients with `inFlight` partitions in progress on each; after each reopen,
    /// `sampleSize` random partitions are read back.
    init(layout: PartitionLayout, executable: String, directory: BenchDirectory, extraTopics: Int, clientCount: Int, inFlight: Int,
         sampleSize: Int, progress: BenchmarkProgress) throws {
        self.layout = layout
        self.executable = executable
        self.directory = directory
        self.clientCount = clientCount
        self.inFlight = inFlight
        self.sampleSize = sampleSize
        self.progress = progress
        caseDirectory = try directory.freshSubdirectory("partitions-\(layout.partitionsPerTopic)")
        dataDirectory = "\(caseDirectory)/data"
        let topicsNeeded = layout.topics + extraTopics
        if topicsNeeded > ServerConfiguration().broker.maxTopics {
            let file = "\(caseDirectory)/spoold.yaml"
            try "max.topics: \(topicsNeeded)\n".write(toFile: file, atomically: true, encoding: .utf8)
            raisedTopicLimit = topicsNeeded
            configFile = file
        } else {
            raisedTopicLimit = nil
            configFile = nil
        }
    }

    /// Kills the broker if it runs (SIGKILL): for `defer` blocks and failure paths.
    func killIfRunning() {
        broker?.killIfRunning()
    }

    /// Starts spoold on the still empty data directory and returns the seconds until it answered:
    /// the cost of a start with nothing to open.
    func startEmpty() async throws -> Double {
        let started = try await startBroker()
        return started.readySeconds
    }

    /// Creates every topic of the layout, one request after another on one client; its `seconds`
    /// is the whole time.
    func createTopics() async throws -> Throughput {
        let client = try running.client
        let layout = layout
        let cursor = WorkCursor(count: layout.topics)
        let stopwatch = Stopwatch()
        try await progress.reporting({ "  partitions: created \(grouped(cursor.finished)) of \(grouped(layout.topics)) topics" }, while: {
            while let index = cursor.claim() {
                try await client.createTopic(layout.topicName(index), partitions: Int32(layout.partitionsPerTopic), settings: layout.topicSettings)
                cursor.finish()
            }
        })
        return Throughput(bytes: 0, records: 0, seconds: stopwatch.seconds)
    }

    /// Publishes every batch of every partition (a partition's batches one after another, each
    /// acknowledgement checked for the offset it should have), then reads back a sample.
    func write() async throws -> Throughput {
        let layout = layout
        let seconds = try await forEachPartition(Array(0..<layout.partitionCount), doing: "written") { number, client in
            let (topic, partition) = layout.address(ofPartition: number)
            for batch in 0..<layout.batchesPerPartition {
                let result = try await client.publish(to: topic, partition: partition, records: layout.batch(batch, ofPartition: number))
                let expected = Int64(batch * PartitionLayout.recordsPerBatch)
                guard result.baseOffset == expected else {
                    throw BenchError("verification failed: batch \(batch) of \(topic)/\(partition) landed at offset \(result.baseOffset), not \(expected)")
                }
            }
        }
        try await verifySample()
        let records = layout.partitionCount * layout.recordsPerPartition
        return Throughput(bytes: records * PartitionLayout.recordBytes, records: records, seconds: seconds)
    }

    /// The fewest and the most segments a partition has on disk (`.log` files).
    func segmentsPerPartition() throws -> ClosedRange<Int> {
        var fewest = Int.max, most = 0
        for number in 0..<layout.partitionCount {
            let (topic, partition) = layout.address(ofPartition: number)
            let count = try FileManager.default.contentsOfDirectory(atPath: "\(dataDirectory)/\(topic)/\(partition)")
                .filter { $0.hasSuffix(".log") }.count
            fewest = min(fewest, count)
            most = max(most, count)
        }
        return fewest...most
    }

    /// Ends the running broker as `ending` says, starts it again, times the open, takes the
    /// broker's memory and descriptors at once (idle), then reads back a sample of partitions.
    func reopen(after ending: Ending) async throws -> OpenRun {
        let stopped = try running
        broker = nil
        let stopSeconds = try await stopped.stop(with: ending.signal)
        let started = try await startBroker()
        let usage = try started.usage()
        try await verifySample()
        return OpenRun(throughput: Throughput(bytes: 0, records: 0, seconds: started.readySeconds), listeningSeconds: started.listeningSeconds,
                       stopSeconds: stopSeconds, usage: usage, verifiedInFull: started.logged("every segment in full"))
    }

    /// Reads every partition to its end and checks every record; the broker's memory and
    /// descriptors are taken before and after.
    func readEveryPartition() async throws -> ReadRun {
        let before = try running.usage()
        let layout = layout
        let seconds = try await forEachPartition(Array(0..<layout.partitionCount), doing: "read and checked") { number, client in
            try await Self.check(partition: number, of: layout, with: client)
        }
        let records = layout.partitionCount * layout.recordsPerPartition
        return ReadRun(throughput: Throughput(bytes: records * PartitionLayout.recordBytes, records: records, seconds: seconds),
                       before: before, after: try running.usage())
    }

    /// Sends `count` `request`s one after another, each for a random topic or partition (from
    /// `seed`), and checks each answer (partition count, end offset).
    func timeRequests(_ request: Request, count: Int, seed: UInt64) async throws -> LatencyRun {
        let client = try running.client
        var generator = SeededGenerator(seed: seed)
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        let expectedEnd = Int64(layout.recordsPerPartition)
        for _ in 0..<count {
            let (topic, partition) = layout.address(ofPartition: Int.random(in: 0..<layout.partitionCount, using: &generator))
            let stopwatch = Stopwatch()
            let answer: String?
            switch request {
            case .topicMetadata:
                let topics = try await client.topics([topic])
                latencies.append(stopwatch.seconds)
                let found = topics.first?.partitions
                answer = found?.count == layout.partitionsPerTopic && found?[Int(partition)].latestOffset == expectedEnd ? nil : "\(topics)"
            case .everyTopicMetadata:
                let topics = try await client.topics()
                latencies.append(stopwatch.seconds)
                answer = topics.count >= layout.topics ? nil : "\(topics.count) topics"
            case .listOffsets:
                let end = try await client.offset(of: topic, partition: partition, .latest)
                latencies.append(stopwatch.seconds)
                answer = end == expectedEnd ? nil : "end offset \(end)"
            }
            if let answer {
                throw BenchError("verification failed: \(request) for \(topic)/\(partition) answered \(answer.prefix(300)); expected \(layout.partitionsPerTopic) partitions ending at \(expectedEnd)")
            }
        }
        return LatencyRun(latencies: latencies)
    }

    /// Creates the `number`th extra topic, of as many partitions as the case's own, and times it.
    func timeCreatingOneMoreTopic(number: Int) async throws -> Throughput {
        let client = try running.client
        let stopwatch = Stopwatch()
        try await client.createTopic(layout.extraTopicName(number), partitions: Int32(layout.partitionsPerTopic), settings: layout.topicSettings)
        return Throughput(bytes: 0, records: 0, seconds: stopwatch.seconds)
    }

    /// Stops the broker gracefully and deletes the case's files.
    func finish() async throws {
        if let broker {
            self.broker = nil
            _ = try await broker.stop(with: SIGTERM)
        }
        directory.removeItem(caseDirectory)
    }

    /// The running broker, or an error saying there is none.
    private var running: BrokerProcess {
        get throws {
            guard let broker else { throw BenchError("the partitions bench has no running spoold") }
            return broker
        }
    }

    /// Starts spoold on the case's data directory and keeps it as the running broker.
    private func startBroker() async throws -> BrokerProcess {
        let started = try await BrokerProcess.start(executable: executable, dataDirectory: dataDirectory, configFile: configFile,
                                                    directory: directory)
        broker = started
        return started
    }

    /// Reads back `sampleSize` random partitions (all of them if there are fewer) and checks every record.
    private func verifySample() async throws {
        let layout = layout
        let sample = Array((0..<layout.partitionCount).shuffled().prefix(sampleSize))
        _ = try await forEachPartition(sample, doing: "read back (sample)") { number, client in
            try await Self.check(partition: number, of: layout, with: client)
        }
    }

    /// Runs `body` for each partition number of `numbers` on ``clientCount`` fresh clients, each
    /// with ``inFlight`` partitions in progress, saying every 2 s how many are `doing`. Returns
    /// the seconds from the first claim to the last completion (connecting the clients excluded).
    private func forEachPartition(_ numbers: [Int], doing: String,
                                  _ body: @escaping @Sendable (Int, SpoolClient) async throws -> Void) async throws -> Double {
        let endpoint = try running.endpoint
        var clients: [SpoolClient] = []
        defer { clients.forEach { $0.close() } }
        for _ in 0..<clientCount { clients.append(try await SpoolClient(endpoint: endpoint, logger: quietClientLogger)) }
        let cursor = WorkCursor(count: numbers.count)
        let stopwatch = Stopwatch()
        try await progress.reporting({ "  partitions: \(grouped(cursor.finished)) of \(grouped(numbers.count)) partitions \(doing)" }, while: {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in clients {
                    for _ in 0..<inFlight {
                        group.addTask {
                            while let index = cursor.claim() {
                                try await body(numbers[index], client)
                                cursor.finish()
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        })
        return stopwatch.seconds
    }

    /// Reads partition `number` to its end and throws unless it holds exactly the layout's records.
    private static func check(partition number: Int, of layout: PartitionLayout, with client: SpoolClient) async throws {
        let (topic, partition) = layout.address(ofPartition: number)
        let records = try await client.readToEnd(of: topic, partition: partition)
        let differences = recordDifferences(records, expected: layout.records(ofPartition: number))
        guard differences.isEmpty else {
            throw BenchError("verification failed: \(topic)/\(partition) does not hold what was written: "
                + differences.prefix(3).map { String($0.prefix(300)) }.joined(separator: "; "))
        }
    }
}

/// One timed open of the partitions section.
struct OpenRun: TimedRun {
    /// `seconds`: from spawning spoold to its first answered metadata request.
    let throughput: Throughput
    /// Seconds from spawning to the arrival of the `listening` log line.
    let listeningSeconds: Double?
    /// Seconds the previous run took to exit after its signal.
    let stopSeconds: Double
    /// Memory and descriptors right after the open, idle.
    let usage: ProcessUsage
    /// True when spoold said it verified every segment in full (after a crash), false for cheap checks.
    let verifiedInFull: Bool
}

/// The read of every partition, and the broker's memory and descriptors around it.
struct ReadRun: TimedRun {
    /// Record values read and how long it took.
    let throughput: Throughput
    /// Idle, before the read.
    let before: ProcessUsage
    /// Idle, after the read.
    let after: ProcessUsage
}

/// Request latencies, sequential; `throughput.seconds` is their sum.
struct LatencyRun: TimedRun {
    /// `seconds`: the sum of the latencies; nothing counted as bytes or records.
    let throughput: Throughput
    /// Every latency in seconds, sorted.
    let latencies: [Double]

    /// The run of `latencies` (in seconds, any order).
    init(latencies: [Double]) {
        self.latencies = latencies.sorted()
        throughput = Throughput(bytes: 0, records: 0, seconds: latencies.reduce(0, +))
    }

    /// The latency `fraction` of the requests stay within (nearest rank), in seconds.
    func percentile(_ fraction: Double) -> Double {
        latencies[max(0, min(latencies.count - 1, Int((fraction * Double(latencies.count)).rounded(.up)) - 1))]
    }
}

/// Hands out indexes 0..<count to concurrent workers and counts the finished ones. Thread-safe (atomics).
final class WorkCursor: Sendable {
    private let count: Int
    private let next = Atomic<Int>(0)
    private let finishedCount = Atomic<Int>(0)

    /// A cursor over 0..<`count`.
    init(count: Int) {
        self.count = count
    }

    /// The next unclaimed index, or nil when all are taken.
    func claim() -> Int? {
        let index = next.add(1, ordering: .relaxed).oldValue
        return index < count ? index : nil
    }

    /// Counts one claimed index as done.
    func finish() {
        finishedCount.add(1, ordering: .relaxed)
    }

    /// Indexes done so far.
    var finished: Int { finishedCount.load(ordering: .relaxed) }
}
