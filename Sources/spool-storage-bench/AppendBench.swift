import BenchmarkSupport
import Foundation
import Logging
import Spool
import SpoolServer
import SpoolStorage
import SpoolTesting
import Synchronization

/// Section 2: producers publishing through a real broker, in this process on `inproc://`, under
/// one fsync policy. Each producer is its own ``SpoolClient`` keeping `inFlight` batches
/// outstanding, all to partition 0 of one topic; a run ends when `totalBytes` of values are
/// acknowledged or `timeLimit` has passed, whichever comes first.
struct AppendBench {
    /// The topic every producer writes (one partition).
    static let topic = "bench"

    /// Holds each run's data directory.
    let directory: BenchDirectory
    /// Concurrent producers (clients).
    let producers: Int
    /// Batches each producer keeps outstanding.
    let inFlight: Int
    /// Value bytes per run.
    let totalBytes: Int
    /// Longest a run may take before it stops early.
    let timeLimit: Duration
    /// Logger of the brokers (warnings and errors only).
    let logger: Logger
    /// Where progress goes.
    let progress: BenchmarkProgress

    /// Starts a broker on a fresh data directory, publishes until the budget or the time limit is
    /// spent, and returns the figures with the broker still running, so the partition can be read back.
    func run(policy: FsyncPolicy, shape: RecordShape, label: String) async throws -> (AppendRun, AppendedLog) {
        let dataDirectory = try directory.freshSubdirectory("append-" + String(label.map { $0.isLetter || $0.isNumber ? $0 : "-" }))
        let records = shape.outgoingRecords()
        // Room for one batch of values plus framing, whatever --batch-bytes says.
        let maxBatchBytes = max(1 << 20, 2 * shape.batchPayloadBytes)
        let broker = try InProcessBroker(transport: .inproc, logger: logger) { configuration in
            configuration.broker.dataDirectory = dataDirectory
            configuration.broker.log.fsync = policy
            configuration.broker.maxBatchBytes = maxBatchBytes
        }
        var clients: [SpoolClient] = []
        for _ in 0..<producers {
            clients.append(try await broker.makeClient(configuration: ClientConfiguration(maxBatchBytes: maxBatchBytes)))
        }
        defer { clients.forEach { $0.close() } }
        try await clients[0].createTopic(Self.topic, partitions: 1)

        let budget = BatchBudget(batches: max(1, totalBytes / shape.batchPayloadBytes), deadline: .now + timeLimit)
        let flushesBefore = directory.filesystem.flushCount()
        let cpuBefore = processCPUSeconds()
        let stopwatch = Stopwatch()
        try await progress.reporting({
            "  \(label): \((budget.acknowledged * shape.batchPayloadBytes) >> 20) of \(totalBytes >> 20) MiB acknowledged"
        }, while: {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in clients {
                    for _ in 0..<inFlight {
                        group.addTask {
                            while budget.claim() {
                                try await client.publish(to: Self.topic, partition: 0, records: records)
                                budget.acknowledge()
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        })
        let seconds = stopwatch.seconds
        let cpuCores = (processCPUSeconds() - cpuBefore) / seconds
        let flushes = flushesBefore.flatMap { before in directory.filesystem.flushCount().map { $0 - before } }
        let batches = budget.acknowledged
        let throughput = Throughput(bytes: batches * shape.batchPayloadBytes, records: batches * shape.recordsPerBatch, seconds: seconds)
        let log = AppendedLog(broker: broker, dataDirectory: dataDirectory, topic: Self.topic, recordCount: throughput.records)
        let run = AppendRun(throughput: throughput, cpuCores: cpuCores, deviceFlushes: flushes, reachedTimeLimit: budget.reachedTimeLimit)
        return (run, log)
    }
}

/// One append run's figures.
struct AppendRun: TimedRun {
    /// Record values acknowledged and how long it took.
    let throughput: Throughput
    /// CPU time the process (producers and broker) used per second of the run.
    let cpuCores: Double
    /// Flushes the device completed during the run (every process's), if the kernel reports them.
    let deviceFlushes: Int?
    /// True when the run stopped at the time limit, before its byte budget was spent.
    let reachedTimeLimit: Bool
}

/// A partition an append run wrote, with the broker that wrote it, still running until
/// ``stopBroker()``.
final class AppendedLog: Sendable {
    /// The broker that served the run.
    let broker: InProcessBroker
    /// The broker's data directory.
    let dataDirectory: String
    /// The topic written (partition 0 only).
    let topic: String
    /// Records acknowledged.
    let recordCount: Int

    /// Describes the partition `topic`/0 that `broker` wrote under `dataDirectory`.
    init(broker: InProcessBroker, dataDirectory: String, topic: String, recordCount: Int) {
        self.broker = broker
        self.dataDirectory = dataDirectory
        self.topic = topic
        self.recordCount = recordCount
    }

    /// The partition's log directory, `<data>/<topic>/0`.
    var partitionDirectory: String { "\(dataDirectory)/\(topic)/0" }

    /// Stops the broker gracefully (it syncs what is unsynced). Idempotent.
    func stopBroker() async {
        await broker.stop()
    }

    /// Stops the broker and deletes the data.
    func discard() async {
        await stopBroker()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }
}

/// Hands batches out to producers until the run's budget is spent or its deadline has passed,
/// and counts the acknowledged ones. Thread-safe (atomics).
final class BatchBudget: Sendable {
    private let unclaimed: Atomic<Int>
    private let acknowledgedCount = Atomic<Int>(0)
    private let stoppedByDeadline = Atomic<Bool>(false)
    private let deadline: ContinuousClock.Instant

    /// A budget of `batches` batches that ends at `deadline`.
    init(batches: Int, deadline: ContinuousClock.Instant) {
        unclaimed = Atomic(batches)
        self.deadline = deadline
    }

    /// Takes one batch from the budget; false when none is left or the deadline has passed.
    func claim() -> Bool {
        guard ContinuousClock.now < deadline else {
            stoppedByDeadline.store(true, ordering: .relaxed)
            return false
        }
        return unclaimed.subtract(1, ordering: .relaxed).newValue >= 0
    }

    /// Counts one batch the broker acknowledged.
    func acknowledge() {
        acknowledgedCount.add(1, ordering: .relaxed)
    }

    /// Batches acknowledged so far.
    var acknowledged: Int { acknowledgedCount.load(ordering: .relaxed) }

    /// True when a claim was refused because the deadline had passed.
    var reachedTimeLimit: Bool { stoppedByDeadline.load(ordering: .relaxed) }
}
