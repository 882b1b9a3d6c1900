import BenchmarkSupport
import Foundation
import Logging
import Spool

/// Work done in one timed run.
struct Throughput: Sendable {
    /// Payload bytes moved (record values, or message bytes for raw ZeroMQ).
    var bytes: Int
    /// Records (or messages) moved.
    var records: Int
    /// Seconds the timed part took.
    var seconds: Double
    /// CPU time of this process (all threads) over the timed part, in cores; nil if not measured.
    var cpuCores: Double?

    init(bytes: Int, records: Int, seconds: Double, cpuCores: Double? = nil) {
        self.bytes = bytes
        self.records = records
        self.seconds = seconds
        self.cpuCores = cpuCores
    }

    /// Bandwidth in MB/s (10^6 bytes per second).
    var megabytesPerSecond: Double { Double(bytes) / seconds / 1e6 }
    /// Records per second.
    var recordsPerSecond: Double { Double(records) / seconds }
}

/// What the broker sections share: where the broker is, the shape of the records, and the
/// client that creates the topics.
struct BrokerBench: Sendable {
    let connection: ConnectionOptions
    /// Creates topics and checks what was stored.
    let admin: SpoolClient
    /// Record value bytes.
    let size: Int
    /// Partitions of each fresh topic.
    let partitions: Int32
    /// The topics' `fsync` setting.
    let fsync: String
    /// Logs the producers' warnings (retries, expiries) to stderr.
    let logger: Logger

    /// A fresh topic with the benchmark's partitions and fsync policy.
    func createTopic(suffix: String = "") async throws(SpoolError) -> String {
        let topic = freshBenchTopic(suffix: suffix)
        try await admin.createTopic(topic, partitions: partitions, settings: ["fsync": fsync])
        return topic
    }

    /// The number of records stored in every partition of `topic`, partition by partition.
    func storedRanges(of topic: String) async throws(SpoolError) -> [PartitionInfo] {
        guard let info = try await admin.topics([topic]).first else {
            throw SpoolError(.unknownTopic, "topic \(topic) disappeared")
        }
        return info.partitions
    }

    // MARK: produce

    /// `producers` clients, each with its own connection and ``Producer``, enqueue `count`
    /// records between them (unkeyed, so each producer's sticky partitioner fills one
    /// partition's batch, then moves to the next), then flush. Timed from the first enqueue to
    /// the last acknowledgement. Returns the topic it wrote, after checking that it holds exactly
    /// `count` records.
    func produce(count: Int, producers producerCount: Int, configuration: ProducerConfiguration) async throws -> (topic: String, result: Throughput) {
        let topic = try await createTopic()
        var clients: [SpoolClient] = []
        defer { clients.forEach { $0.close() } }
        var producers: [Producer] = []
        for _ in 0..<producerCount {
            let client = try await connection.connect()
            clients.append(client)
            producers.append(try Producer(client: client, configuration: configuration, logger: logger))
        }
        // A pool of distinct values, shared (not copied) by the records that reuse them.
        let poolSize = max(1, min(256, (16 << 20) / size))
        let values = (0..<poolSize).map { _ in randomBytes(size) }
        let cpuBefore = processCPUSeconds()
        let stopwatch = Stopwatch()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, producer) in producers.enumerated() {
                let share = count / producerCount + (index < count % producerCount ? 1 : 0)
                group.addTask {
                    var next = 0
                    for _ in 0..<share {
                        try await producer.enqueue(to: topic, value: values[next])
                        next = next + 1 == values.count ? 0 : next + 1
                    }
                    try await producer.flush()
                }
            }
            try await group.waitForAll()
        }
        let seconds = stopwatch.seconds
        let cpu = (processCPUSeconds() - cpuBefore) / seconds
        for producer in producers { try await producer.close() }
        let stored = try await storedRanges(of: topic).reduce(0) { $0 + Int($1.latestOffset - $1.earliestOffset) }
        guard stored == count else {
            throw BenchFailure("produce: topic \(topic) holds \(stored) records after \(count) were acknowledged")
        }
        return (topic, Throughput(bytes: count * size, records: count, seconds: seconds, cpuCores: cpu))
    }

    // MARK: consume

    /// Reads every record of `topic` back, from the earliest offset of each partition to the
    /// latest: one client, one ``SpoolClient/records(from:partition:startingAt:)`` stream per
    /// partition, all at once. Timed from the first fetch to the last record.
    func consume(topic: String) async throws -> Throughput {
        let ranges = try await storedRanges(of: topic).filter { $0.latestOffset > $0.earliestOffset }
        let client = try await connection.connect()
        defer { client.close() }
        let cpuBefore = processCPUSeconds()
        let stopwatch = Stopwatch()
        let (records, bytes) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for range in ranges {
                group.addTask {
                    var records = 0
                    var bytes = 0
                    let last = range.latestOffset - 1
                    for try await record in client.records(from: topic, partition: range.partition, startingAt: .offset(range.earliestOffset)) {
                        records += 1
                        bytes += record.value.count
                        if record.offset >= last { break }
                    }
                    return (records, bytes)
                }
            }
            return try await group.reduce(into: (0, 0)) { total, partition in
                total.0 += partition.0
                total.1 += partition.1
            }
        }
        let seconds = stopwatch.seconds
        let expected = ranges.reduce(0) { $0 + Int($1.latestOffset - $1.earliestOffset) }
        guard records == expected else {
            throw BenchFailure("consume: read \(records) records of \(topic), expected \(expected)")
        }
        return Throughput(bytes: bytes, records: records, seconds: seconds, cpuCores: (processCPUSeconds() - cpuBefore) / seconds)
    }
}
