import ArgumentParser
import BenchmarkSupport
import Foundation
import Spool
import SpoolWire
import Synchronization

/// `spool bench fairness`: whether one client reading a large backlog as fast as it can slows
/// another client's small durable produces, both served by the broker's one network loop.
struct BenchFairness: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fairness",
        abstract: "Loop fairness: small durable produces one at a time, alone and while another client reads a large backlog.",
        discussion: """
            First fills a fresh topic bench-<random>-backlog (fsync never, one partition) with \
            --backlog-mib MiB of --backlog-record-size-byte records. Then, --runs times:
            - alone: one producer (linger 0) sends --produces records of --size bytes to a fresh \
            topic (fsync --fsync) one at a time, each awaiting its acknowledgement (the request \
            section of `spool bench`); p50 … max of send → acknowledgement.
            - with the reader: the same, while another connection fetches the backlog from offset \
            0 in fetches of --fetch-bytes (the broker answers at most its max.fetch.bytes, 1 MiB by \
            default), one in flight, each sent as soon as the last is answered, starting again at \
            0 at the end. The reader only walks the batch headers: it costs this process little. \
            --readers runs several such readers, each on its own connection.
            The report gives both rows, the reader's MB/s and largest reply, and the ratio of the \
            p99s: how much one greedy reader costs everyone else on the broker.

            Examples:
              spool bench fairness
              spool bench fairness --backlog-mib 64 --produces 500 --runs 1
              spool bench fairness --readers 4 --fsync never --csv
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: ArgumentHelp("Size of the backlog the reader reads (1 to 65536).", valueName: "MiB"))
    var backlogMib = 256

    @Option(help: ArgumentHelp("Record value bytes of the backlog (1 to 1000000).", valueName: "bytes"))
    var backlogRecordSize = 1_000

    @Option(help: "Small produces measured per phase (1 to 1000000).")
    var produces = 2_000

    @Option(help: ArgumentHelp("Record value bytes of the small produces (1 to 1000000).", valueName: "bytes"))
    var size = 100

    @Option(help: "Clients reading the backlog at once, each with its own connection and one fetch in flight (1 to 64).")
    var readers = 1

    @Option(help: ArgumentHelp("Most bytes each of the reader's fetches asks for (1024 to 2147483647).", valueName: "bytes"))
    var fetchBytes = 64 << 20

    @Option(help: "The small produces' topic's fsync setting: always (acknowledged once on disk), interval or never.")
    var fsync: BenchOptions.FsyncPolicy = .always

    @Option(help: "Runs; each figure is the median (1 to 100).")
    var runs = 3

    @Flag(help: "Print the results as CSV instead of Markdown; the command line, ratio and notes then go to stderr.")
    var csv = false

    func validate() throws {
        func check(_ condition: Bool, _ message: String) throws {
            if !condition { throw ValidationError(message) }
        }
        try check((1...65_536).contains(backlogMib), "--backlog-mib must be 1 to 65536, not \(backlogMib)")
        try check((1...BenchOptions.maxSize).contains(backlogRecordSize), "--backlog-record-size must be 1 to \(BenchOptions.maxSize), not \(backlogRecordSize)")
        try check((1...1_000_000).contains(produces), "--produces must be 1 to 1000000, not \(produces)")
        try check((1...BenchOptions.maxSize).contains(size), "--size must be 1 to \(BenchOptions.maxSize) bytes, not \(size)")
        try check((1024...Int(Int32.max)).contains(fetchBytes), "--fetch-bytes must be 1024 to \(Int32.max), not \(fetchBytes)")
        try check((1...100).contains(runs), "--runs must be 1 to 100, not \(runs)")
        try check((1...64).contains(readers), "--readers must be 1 to 64, not \(readers)")
    }

    func run() async throws {
        try await reportingBenchFailures { try await measureAndPrint() }
    }

    private func measureAndPrint() async throws {
        let progress = BenchmarkProgress()
        let loadAtStart = loadAverage()
        let admin = try await connection.connect()
        defer { admin.close() }
        let bench = BrokerBench(connection: connection, admin: admin, size: size, partitions: 1, fsync: fsync.rawValue, logger: WarningLogHandler.logger)
        let backlog = try await fillBacklog(admin: admin)
        progress.say("backlog \(backlog.topic): \(grouped(backlog.records)) records, \(backlogMib) MiB")

        var alone: [LatencyRun] = [], contended: [LatencyRun] = [], reads: [BacklogReader] = []
        for number in 1...runs {
            let solo = try await bench.requestResponse(count: produces)
            alone.append(solo)
            let swarm = try ConsumerSwarm(endpoint: connection.endpoint, curve: try connection.curve())
            let reader = BacklogReader()
            let (busy, read) = try await withThrowingTaskGroup(of: BacklogReader?.self) { group in
                defer {
                    swarm.stop()
                    group.cancelAll()
                }
                group.addTask {
                    try await swarm.run(Array(repeating: SwarmConsumer(topic: backlog.topic, partition: 0, offset: 0), count: readers), maxWaitMilliseconds: 0,
                                        maxBytes: UInt32(fetchBytes), warmUp: false, handler: reader)
                }
                try await reader.started.wait(orFailAfter: .seconds(60), { "fairness: the backlog reader got no reply within 60 s" })
                let busy = try await bench.requestResponse(count: produces)
                swarm.stop()
                for try await case let read? in group { return (busy, read) }
                throw BenchFailure("fairness: the backlog reader's thread returned nothing")
            }
            contended.append(busy)
            reads.append(read)
            progress.say("fairness run \(number)/\(runs): produce p99 \(decimal(solo.latency.p99, digits: 0)) µs alone, "
                         + "\(decimal(busy.latency.p99, digits: 0)) µs while reading the backlog at \(decimal(read.throughput.megabytesPerSecond, digits: 0)) MB/s")
        }

        let aloneFigures = medianLatency(alone), busyFigures = medianLatency(contended)
        let ratio = busyFigures.p99 / max(aloneFigures.p99, 1e-9)
        let largest = reads.map(\.largestReply).max() ?? 0
        let readerRate = median(reads.map(\.throughput.megabytesPerSecond))
        var report = BenchReport()
        let produceCase = "1 producer, linger 0, fsync \(fsync.rawValue), each send awaits its ack"
        report.rows.append(BenchRow(section: "fairness", scenario: "\(produceCase), alone", recordBytes: size, runs: alone.map(\.sending),
                                    latency: aloneFigures, notes: "latency: send → acknowledgement"))
        report.rows.append(BenchRow(section: "fairness", scenario: "\(produceCase), while \(readers == 1 ? "another client reads" : "\(readers) other clients read") a \(backlogMib) MiB backlog",
                                    recordBytes: size, runs: contended.map(\.sending), latency: busyFigures,
                                    notes: "p99 \(decimal(ratio, digits: 2))× alone; p50 \(decimal(busyFigures.p50 / max(aloneFigures.p50, 1e-9), digits: 2))× alone"))
        report.rows.append(BenchRow(section: "backlog", scenario: "\(readers) client\(readers == 1 ? "" : "s"), fetches of up to \(grouped(fetchBytes)) B from offset 0, one in flight each",
                                    recordBytes: backlogRecordSize, runs: reads.map(\.throughput),
                                    notes: "largest reply \(grouped(largest)) B; \(grouped(reads.map(\.replies).reduce(0, +))) replies"))
        // The loop copies a reply into one frame (pread) before it turns to the next message: a
        // reply of the largest size holds the loop for about its size over the rate it is read at.
        let hold = Double(largest) / max(readerRate * 1e6, 1) * 1e6
        let lines = ["", "Fairness: small produce p99 \(decimal(busyFigures.p99, digits: 0)) µs with the reader, \(decimal(aloneFigures.p99, digits: 0)) µs alone: "
                     + "\(decimal(ratio, digits: 2))×.",
                     "Bound: one fetch reply is at most max.fetch.bytes (largest seen \(grouped(largest)) B); the broker's loop reads it into one "
                     + "frame before it serves the next message, and takes messages from its connections in turn, so about \(readers) such "
                     + "repl\(readers == 1 ? "y" : "ies") (one per reader) can be ahead of a produce, and again ahead of its acknowledgement; at the "
                     + "readers' \(decimal(readerRate, digits: 0)) MB/s one reply takes about \(decimal(hold, digits: 0)) µs "
                     + "(copy, send and the reader's round trip included)."]
        let legend = """
            Latency percentiles are the medians of each percentile over the runs; records/s of the fairness rows: \
            acknowledged produces per second; backlog row: records and MB/s (10^6 bytes of record batches, headers included) the reader got.
            """
        print(renderBenchOutput(title: "spool bench fairness", table: report.table, csv: csv, broker: "Broker: \(connection.endpoint)", legend: legend,
                                lines: lines, load: (loadAtStart, loadAverage()), elapsed: progress.elapsedSeconds))
    }

    /// A fresh one-partition topic (fsync never: the backlog only has to be there) holding
    /// `backlogMib` MiB of records, written by one Producer in 1 MiB batches.
    private func fillBacklog(admin: SpoolClient) async throws -> (topic: String, records: Int) {
        let topic = freshBenchTopic(suffix: "-backlog")
        try await admin.createTopic(topic, settings: ["fsync": "never"])
        let client = try await connection.connect()
        defer { client.close() }
        let producer = try Producer(client: client, configuration: ProducerConfiguration(batchBytes: BenchOptions.maxBatchBytes),
                                    logger: WarningLogHandler.logger)
        let records = max(1, (backlogMib << 20) / backlogRecordSize)
        let value = randomBytes(backlogRecordSize)
        for _ in 0..<records { try await producer.enqueue(to: topic, value: value) }
        try await producer.close()
        return (topic, records)
    }

    /// Each percentile's median over `runs`.
    private func medianLatency(_ runs: [LatencyRun]) -> LatencyFigures {
        LatencyFigures(p50: median(runs.map(\.latency.p50)), p90: median(runs.map(\.latency.p90)), p99: median(runs.map(\.latency.p99)),
                       p999: median(runs.map(\.latency.p999)), max: median(runs.map(\.latency.max)))
    }
}

/// The backlog readers of `spool bench fairness`: counts what the replies bring (walking batch
/// headers only); each reader fetches on from where its last reply ended, from the start again at the end.
struct BacklogReader: SwarmHandler {
    /// The first reply arrived: the readers are reading.
    let started = Gate()
    private(set) var bytes = 0
    private(set) var records = 0
    private(set) var replies = 0
    private(set) var largestReply = 0
    private var firstReply: UInt64 = 0
    private var lastReply: UInt64 = 0

    /// What the readers got from the first reply to the last.
    var throughput: Throughput {
        Throughput(bytes: bytes, records: records, seconds: max(Double(lastReply - firstReply) / 1e9, 1e-9))
    }

    mutating func received(consumer: Int, requested: Int64, batches: UnsafeRawBufferPointer, next: Int64, logEnd: Int64,
                           at time: UInt64) throws(BenchFailure) -> Int64 {
        if replies == 0 {
            firstReply = time
            started.open()
        } else {
            bytes += batches.count
            try forEachBatch(in: batches) { header, _ in records += Int(header.recordCount) }
        }
        replies += 1
        largestReply = max(largestReply, batches.count)
        lastReply = time
        return next >= logEnd ? 0 : next
    }

    func abandon(_ failure: BenchFailure) { started.open(.failure(failure)) }
}
