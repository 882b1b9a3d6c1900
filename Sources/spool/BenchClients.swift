import ArgumentParser
import BenchmarkSupport
import Foundation
import Histogram
import Logging
import Spool
import SpoolWire
import Synchronization

/// `spool bench clients`: what many clients cost the broker: delivery latency when many consumers
/// long-poll one partition (fan-out) or one partition each (spread), and the broker's memory and
/// CPU per client.
struct BenchClients: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients",
        abstract: "Many consumers at once: fan-out to --clients readers of one partition, or one partition each; the broker's RSS and CPU per client.",
        discussion: """
            This process opens --clients consumers, each a DEALER connection of its own with one \
            long-polling fetch (10 s, as the SDK's streams) in flight, all driven by one thread \
            with the wire protocol: 1,000 SpoolClients would be 1,000 I/O threads that each record \
            wakes at once (and 3,000 ZeroMQ sockets), and the figures would measure them instead \
            of the broker. Sections, each run --runs times (figures are medians):
            - fan-out: every consumer reads partition 0 of a fresh one-partition topic.
            - spread: consumer i reads partition i of a fresh topic of --clients partitions.
            Per section and run: the consumers connect (each answers a fetch that does not wait), \
            then long-poll; one priming record per partition reaches them all; they sit idle \
            --idle-seconds; then one producer (its own connection, linger 0) sends --records \
            records at --rate per second (spread: record k to partition k mod --clients), each \
            value starting with its send time. Every consumer must get every record of its \
            partition exactly once, in order; if not, the run fails (exit 1).

            Figures: produce → LAST consumer (per record: the latest receive time over its \
            consumers minus its send time; in spread a record has one consumer) p50/p99/max, \
            and per delivery (every consumer's receive) p50/p99/max, in µs.
            The broker's cost, read from /proc/<pid>/status (VmRSS) and /proc/<pid>/stat (utime + \
            stime): RSS per partition (spread: topic created), per client (connected, nothing \
            parked), per parked fetch, and per client at the run's peak, each a difference over the \
            previous stage divided by --clients; CPU per client idle (parked) and during the run, \
            and CPU per delivery; the notes give this process's own CPU (it shares the machine). \
            The broker is --broker-pid, else the spoold on this machine \
            listening on the endpoint's TCP port (its HTTP status reports no pid); if none, RSS \
            and CPU are not measured and the run goes on.

            This process raises its soft open-file limit to the hard one (each consumer needs \
            about 2 descriptors here, and 1 in the broker); if that is still short it says how \
            many are needed. Topics bench-<random>-fan-out and -spread are left on the broker.

            Examples:
              spool bench clients
              spool bench clients --clients 2000 --rate 500 --section fan-out
              spool bench clients --section spread --fsync never --broker-pid 4242
              spool bench clients --clients 100 --records 20000 --csv > clients.csv
            """
    )

    /// The shapes of the benchmark, in the order they run.
    enum Section: String, ExpressibleByArgument, CaseIterable, Sendable {
        case fanOut = "fan-out", spread
    }

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Consumers, each with its own connection (1 to 10000).")
    var clients = 1_000

    @Option(help: ArgumentHelp("Records per second the producer sends (1 to 100000).", valueName: "records/s"))
    var rate = 1_000

    @Option(help: ArgumentHelp("Records measured per run (default: 5 seconds' worth at --rate).", valueName: "count"))
    var records: Int?

    @Option(help: ArgumentHelp("Record value bytes, 8 (the send time) to 1000000.", valueName: "bytes"))
    var size = 100

    @Option(help: "The fresh topics' fsync setting: always (visible to readers once on disk), interval or never.")
    var fsync: BenchOptions.FsyncPolicy = .always

    @Option(name: .customLong("section"), help: "Run only this section (fan-out, spread); repeat for both (the default).")
    var sections: [Section] = []

    @Option(help: "Runs of every section; each figure is the median (1 to 100).")
    var runs = 3

    @Option(help: ArgumentHelp("How long the parked consumers sit idle while the broker's idle CPU is measured.", valueName: "seconds"))
    var idleSeconds: Double = 2

    @Option(help: ArgumentHelp("The broker's process id, for its RSS and CPU (default: the spoold listening on the endpoint's port).", valueName: "pid"))
    var brokerPid: Int32?

    @Flag(help: "Print the results as CSV instead of Markdown; the command line, broker and notes then go to stderr.")
    var csv = false

    /// Descriptors one consumer needs in this process: its TCP connection and its socket's mailbox.
    static let descriptorsPerConsumer = 2
    /// Descriptors this process needs besides its consumers (contexts, the producer, stdio, …).
    static let descriptorsBesides = 64
    /// How long a fetch of the consumers waits, as the SDK's record streams do.
    static let fetchWaitMilliseconds: UInt32 = 10_000

    /// Records measured per run.
    var effectiveRecords: Int { records ?? rate * 5 }

    /// The sections to run, in their order.
    var selectedSections: [Section] { sections.isEmpty ? Section.allCases : Section.allCases.filter(sections.contains) }

    func validate() throws {
        func check(_ condition: Bool, _ message: String) throws {
            if !condition { throw ValidationError(message) }
        }
        try check((1...10_000).contains(clients), "--clients must be 1 to 10000, not \(clients)")
        try check((1...100_000).contains(rate), "--rate must be 1 to 100000 records/s, not \(rate)")
        if let records { try check(records >= 1, "--records must be at least 1, not \(records)") }
        try check((8...BenchOptions.maxSize).contains(size), "--size must be 8 to \(BenchOptions.maxSize) bytes, not \(size)")
        try check((1...100).contains(runs), "--runs must be 1 to 100, not \(runs)")
        try check(idleSeconds >= 0 && idleSeconds <= 600, "--idle-seconds must be 0 to 600, not \(idleSeconds)")
        try check(!selectedSections.contains(.spread) || effectiveRecords >= clients,
                  "--records (\(effectiveRecords)) must be at least --clients (\(clients)) for the spread section: a record for every partition")
    }

    func run() async throws {
        try await reportingBenchFailures { try await measureAndPrint() }
    }

    private func measureAndPrint() async throws {
        let progress = BenchmarkProgress()
        let loadAtStart = loadAverage()
        let limit = raiseOpenFileLimit()
        let needed = clients * Self.descriptorsPerConsumer + Self.descriptorsBesides
        guard limit >= needed else {
            throw BenchFailure("\(clients) clients need about \(needed) open files in this process; the limit is \(limit) even raised to the "
                               + "hard one: raise it (ulimit -n \(needed), or LimitNOFILE= in a unit) or pass a smaller --clients")
        }
        let (broker, unmeasured) = try BrokerProcess.find(explicitPID: brokerPid, endpoint: connection.endpoint)
        let admin = try await connection.connect()
        defer { admin.close() }
        progress.say("broker \(connection.endpoint), " + (broker.map { "RSS and CPU of \($0.foundBy)" } ?? "RSS and CPU not measured: \(unmeasured)")
                     + "; \(clients) clients, \(effectiveRecords) records of \(size) B at \(rate)/s, fsync \(fsync.rawValue); open-file limit \(limit)")
        let bench = ClientsBench(connection: connection, curve: try connection.curve(), admin: admin, broker: broker, clients: clients, rate: rate,
                                 records: effectiveRecords, size: size, fsync: fsync.rawValue, idleSeconds: idleSeconds, progress: progress)
        var results: [Section: [ClientsRun]] = [:]
        for number in 1...runs {
            for section in selectedSections {
                let result = try await bench.run(section)
                results[section, default: []].append(result)
                progress.say("\(section.rawValue) run \(number)/\(runs): produce → last consumer p50 \(µs(result.last.p50)), p99 \(µs(result.last.p99)), "
                             + "max \(µs(result.last.max)); \(grouped(result.deliveries)) deliveries, all complete")
            }
        }
        var table = ReportTable(columns: Self.columns)
        for section in selectedSections {
            if let runs = results[section] { table.rows.append(row(section, runs)) }
        }
        let notes = broker == nil ? ["", "Broker RSS and CPU: not measured (\(unmeasured))."] : ["", "Broker RSS and CPU: \(broker!.foundBy)."]
        let legend = """
            Every consumer got every record of its partition exactly once, in order (the run fails otherwise). `last`: \
            produce → the last of a record's consumers receiving it; `delivery`: produce → each consumer's receive; µs, \
            medians of each percentile over the runs. Broker RSS: the growth of VmRSS per partition (topic created), per \
            client (connected, no fetch waiting), per parked fetch (every client long-polling), and per client at the run's \
            peak over the idle baseline before connecting. Broker CPU: utime + stime per second per client, parked idle \
            and during the run, and per delivery (10 ms clock ticks: small idle figures read as 0).
            """
        print(renderBenchOutput(title: "spool bench clients", table: table, csv: csv, broker: "Broker: \(connection.endpoint)", legend: legend,
                                lines: notes, load: (loadAtStart, loadAverage()), elapsed: progress.elapsedSeconds))
    }

    private static let columns: [ReportTable.Column] = [
        .init("section", "section", rightAligned: false), .init("case", "case", rightAligned: false), .init("clients", "clients"),
        .init("runs", "runs"), .init("records", "records"), .init("deliveries", "deliveries"), .init("records/s", "records_per_second"),
        .init("last p50 µs", "last_p50_us"), .init("last p99 µs", "last_p99_us"), .init("last max µs", "last_max_us"),
        .init("delivery p50 µs", "delivery_p50_us"), .init("delivery p99 µs", "delivery_p99_us"), .init("delivery max µs", "delivery_max_us"),
        .init("RSS/partition", "broker_rss_per_partition_bytes"), .init("RSS/client", "broker_rss_per_client_bytes"),
        .init("RSS/parked fetch", "broker_rss_per_parked_fetch_bytes"), .init("RSS/client active", "broker_rss_per_client_active_bytes"),
        .init("CPU/client idle µs/s", "broker_cpu_per_client_idle_us_per_s"), .init("CPU/client active µs/s", "broker_cpu_per_client_active_us_per_s"),
        .init("CPU/delivery µs", "broker_cpu_per_delivery_us"), .init("notes", "notes", rightAligned: false),
    ]

    /// The table row of a section: the median of each figure over its runs.
    private func row(_ section: Section, _ runs: [ClientsRun]) -> (markdown: [String], csv: [String]) {
        func figures(_ key: KeyPath<ClientsRun, LatencyFigures>) -> LatencyFigures {
            LatencyFigures(p50: median(runs.map { $0[keyPath: key].p50 }), p90: median(runs.map { $0[keyPath: key].p90 }),
                           p99: median(runs.map { $0[keyPath: key].p99 }), p999: median(runs.map { $0[keyPath: key].p999 }),
                           max: median(runs.map { $0[keyPath: key].max }))
        }
        func cost(_ key: KeyPath<BrokerCost, Double?>) -> Double? {
            let values = runs.compactMap { $0.cost?[keyPath: key] }
            return values.isEmpty ? nil : median(values)
        }
        let last = figures(\.last), delivery = figures(\.delivery)
        let scenario = section == .fanOut ? "\(grouped(clients)) consumers of 1 partition, fsync \(fsync.rawValue)"
            : "\(grouped(clients)) consumers, one partition each of 1 topic, fsync \(fsync.rawValue), producer round-robin"
        let sendRate = median(runs.map(\.sending.recordsPerSecond))
        let worst = runs.map(\.last.max).max() ?? 0
        let notes = "target \(grouped(rate)) records/s; worst last max \(µs(worst)); "
            + "CPU of this process \(decimal(median(runs.map(\.benchCPUCores)), digits: 2)) cores"
        let costs = [cost(\.perPartitionBytes), cost(\.perClientBytes), cost(\.perParkedFetchBytes), cost(\.perClientActiveBytes)]
        let cpu = [cost(\.idleCPUPerClient), cost(\.activeCPUPerClient), cost(\.cpuPerDelivery)]
        let markdown = [section.rawValue, scenario, grouped(clients), "\(runs.count)", grouped(runs[0].records), grouped(runs[0].deliveries),
                        grouped(Int(sendRate.rounded())),
                        grouped(Int(last.p50.rounded())), grouped(Int(last.p99.rounded())), grouped(Int(last.max.rounded())),
                        grouped(Int(delivery.p50.rounded())), grouped(Int(delivery.p99.rounded())), grouped(Int(delivery.max.rounded()))]
            + costs.map { $0.map { "\(grouped(Int($0.rounded()))) B" } ?? "" }
            + cpu.map { $0.map { decimal($0 * 1e6, digits: $0 * 1e6 < 10 ? 2 : 0) } ?? "" } + [notes]
        let csv = [section.rawValue, scenario, "\(clients)", "\(runs.count)", "\(runs[0].records)", "\(runs[0].deliveries)", decimal(sendRate, digits: 0),
                   decimal(last.p50, digits: 1), decimal(last.p99, digits: 1), decimal(last.max, digits: 1),
                   decimal(delivery.p50, digits: 1), decimal(delivery.p99, digits: 1), decimal(delivery.max, digits: 1)]
            + costs.map { $0.map { decimal($0, digits: 0) } ?? "" } + cpu.map { $0.map { decimal($0 * 1e6, digits: 3) } ?? "" } + [notes]
        return (markdown, csv)
    }
}

/// The broker's cost in one run of `spool bench clients`; nil fields were not measured.
struct BrokerCost: Sendable {
    /// RSS growth when the topic was created, per partition (spread only), bytes.
    var perPartitionBytes: Double?
    /// RSS growth from before connecting to every client connected (no fetch waiting), per client.
    var perClientBytes: Double?
    /// RSS growth from connected to every client's fetch parked, per parked fetch.
    var perParkedFetchBytes: Double?
    /// The run's peak RSS over the baseline before connecting, per client.
    var perClientActiveBytes: Double?
    /// CPU seconds per second per client while every client is parked and nothing is produced.
    var idleCPUPerClient: Double?
    /// CPU seconds per second per client from the first record sent to the last one delivered.
    var activeCPUPerClient: Double?
    /// CPU seconds per delivery over the same time.
    var cpuPerDelivery: Double?
}

/// One run of a `spool bench clients` section.
struct ClientsRun: Sendable {
    /// Produce → the last consumer of each record.
    var last: LatencyFigures
    /// Produce → every consumer's receive.
    var delivery: LatencyFigures
    /// Records measured and deliveries made (records times the consumers of each).
    var records: Int
    var deliveries: Int
    /// The producer's records and the time it took to send them (its achieved rate).
    var sending: Throughput
    /// Nil when the broker's process is not known.
    var cost: BrokerCost?
    /// CPU of this process (the consumers' thread, the producer, ZeroMQ's I/O threads) over the
    /// run, in cores: it shares the machine with the broker.
    var benchCPUCores: Double
}

/// What the sections of `spool bench clients` share: the broker, the admin client, the shape.
struct ClientsBench: Sendable {
    let connection: ConnectionOptions
    let curve: ClientCurve?
    let admin: SpoolClient
    let broker: BrokerProcess?
    let clients: Int
    let rate: Int
    let records: Int
    let size: Int
    let fsync: String
    let idleSeconds: Double
    let progress: BenchmarkProgress

    /// How long the broker gets to take in what was just sent before a reading of its RSS.
    static let settle = Duration.milliseconds(300)
    /// How long a phase (connecting, priming, the last deliveries) may take.
    static let phaseLimit = Duration.seconds(60)

    /// One run of `section`: a fresh topic, fresh consumers, priming, idle, then the measured records.
    func run(_ section: BenchClients.Section) async throws -> ClientsRun {
        let partitions = section == .fanOut ? 1 : clients
        let beforeTopic = broker?.sample()
        let topic = freshBenchTopic(suffix: "-\(section.rawValue)")
        try await admin.createTopic(topic, partitions: Int32(partitions), settings: ["fsync": fsync])
        try await Task.sleep(for: Self.settle)
        let baseline = broker?.sample()
        let consumers = (0..<clients).map { SwarmConsumer(topic: topic, partition: Int32($0 % partitions), offset: 0) }
        let tracker = DeliveryTracker(consumerPartitions: consumers.map { Int($0.partition) }, partitions: partitions, records: records)
        let tracked = tracker.progress
        let swarm = try ConsumerSwarm(endpoint: connection.endpoint, curve: curve)
        let producerClient = try await connection.connect()
        defer { producerClient.close() }
        let producer = try Producer(client: producerClient, configuration: ProducerConfiguration(linger: .zero), logger: WarningLogHandler.logger)
        let peak = PeakResidentMemory()

        let (finished, stages, (sendSeconds, benchCPU)) = try await withThrowingTaskGroup(of: DeliveryTracker?.self) { group in
            defer {
                swarm.stop()
                group.cancelAll()
            }
            group.addTask {
                try await swarm.run(consumers, maxWaitMilliseconds: BenchClients.fetchWaitMilliseconds, maxBytes: 1 << 20, warmUp: true, handler: tracker)
            }
            try await swarm.connected.wait(orFailAfter: Self.phaseLimit, {
                "\(section.rawValue): \(swarm.repliesReceived) of \(clients) consumers connected within 60 s"
            })
            try await Task.sleep(for: Self.settle)
            let connected = broker?.sample()
            progress.say("\(section.rawValue): \(clients) clients connected; parking their fetches and priming \(partitions) partition(s)")
            swarm.beginPolling()
            let padding = randomBytes(size)
            for partition in 0..<partitions { try await producer.enqueue(to: topic, partition: Int32(partition), value: padding) }
            try await producer.flush()
            try await tracked.primed.wait(orFailAfter: Self.phaseLimit, {
                "\(section.rawValue): \(tracked.primedCount) of \(clients) consumers got the priming record within 60 s"
            })
            try await Task.sleep(for: Self.settle)
            let parked = broker?.sample()
            try await Task.sleep(for: .milliseconds(Int64(idleSeconds * 1000)))
            let idleEnd = broker?.sample()

            if let broker {
                group.addTask {
                    while !Task.isCancelled {
                        if let sample = broker.sample() { peak.note(sample.residentBytes) }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return nil
                }
            }
            let pacer = Pacer(perSecond: Double(rate))
            var value = padding
            let runStart = broker?.sample()
            let cpuAtStart = processCPUSeconds()
            let stopwatch = Stopwatch()
            for index in 0..<records {
                await pacer.wait()
                stamp(&value, with: monotonicNanoseconds())
                try await producer.enqueue(to: topic, partition: Int32(index % partitions), value: value)
            }
            let sendSeconds = stopwatch.seconds
            try await producer.flush()
            try await tracked.done.wait(orFailAfter: Self.phaseLimit, {
                "\(section.rawValue): consumers got \(tracked.deliveredCount) of \(records * (clients / partitions)) deliveries within 60 s of the last send"
            })
            let runEnd = broker?.sample()
            let benchCPU = (processCPUSeconds() - cpuAtStart) / stopwatch.seconds
            if let runEnd { peak.note(runEnd.residentBytes) }
            swarm.stop()
            var finished: DeliveryTracker?
            for try await case let tracker? in group {
                finished = tracker
                break
            }
            let stages = BrokerStages(beforeTopic: beforeTopic, baseline: baseline, connected: connected, parked: parked, idleEnd: idleEnd,
                                      runStart: runStart, runEnd: runEnd, peakResidentBytes: peak.value)
            return (finished, stages, (sendSeconds, benchCPU))
        }
        try await producer.close()
        guard let finished else { throw BenchFailure("\(section.rawValue): the consumers' thread returned nothing") }
        let (last, delivery) = try finished.figures(section: section.rawValue)
        return ClientsRun(last: last, delivery: delivery, records: records, deliveries: finished.deliveries,
                          sending: Throughput(bytes: records * size, records: records, seconds: sendSeconds),
                          cost: stages.cost(clients: clients, partitions: section == .spread ? partitions : nil, deliveries: finished.deliveries),
                          benchCPUCores: benchCPU)
    }
}

/// The broker's readings at the stages of one run.
private struct BrokerStages {
    var beforeTopic, baseline, connected, parked, idleEnd, runStart, runEnd: BrokerProcess.Sample?
    var peakResidentBytes: Int?

    /// The differences between the stages, per client (per partition for the topic).
    func cost(clients: Int, partitions: Int?, deliveries: Int) -> BrokerCost? {
        guard let beforeTopic, let baseline, let connected, let parked, let idleEnd, let runStart, let runEnd, let peakResidentBytes else { return nil }
        let n = Double(clients)
        func cpuPerSecond(_ from: BrokerProcess.Sample, _ to: BrokerProcess.Sample) -> Double {
            (to.cpuSeconds - from.cpuSeconds) / max(1e-9, Double(to.time - from.time) / 1e9)
        }
        return BrokerCost(
            perPartitionBytes: partitions.map { Double(baseline.residentBytes - beforeTopic.residentBytes) / Double($0) },
            perClientBytes: Double(connected.residentBytes - baseline.residentBytes) / n,
            perParkedFetchBytes: Double(parked.residentBytes - connected.residentBytes) / n,
            perClientActiveBytes: Double(peakResidentBytes - baseline.residentBytes) / n,
            idleCPUPerClient: cpuPerSecond(parked, idleEnd) / n,
            activeCPUPerClient: cpuPerSecond(runStart, runEnd) / n,
            cpuPerDelivery: (runEnd.cpuSeconds - runStart.cpuSeconds) / Double(max(1, deliveries)))
    }
}

/// The largest resident size seen by the sampler during a run.
private final class PeakResidentMemory: Sendable {
    private let peak = Atomic<Int>(0)
    func note(_ bytes: Int) { _ = peak.max(bytes, ordering: .relaxed) }
    var value: Int? { peak.load(ordering: .relaxed) > 0 ? peak.load(ordering: .relaxed) : nil }
}

/// The gates and counters of a ``DeliveryTracker`` that the measuring task reads.
final class DeliveryProgress: Sendable {
    /// Every consumer got its partition's priming record (offset 0).
    let primed = Gate()
    /// Every consumer got every measured record of its partition.
    let done = Gate()
    private let primedConsumers = Atomic<Int>(0)
    private let delivered = Atomic<Int>(0)

    var primedCount: Int { primedConsumers.load(ordering: .relaxed) }
    var deliveredCount: Int { delivered.load(ordering: .relaxed) }

    fileprivate func notePrimed() -> Int { primedConsumers.add(1, ordering: .relaxed).newValue }
    fileprivate func noteDelivered(_ count: Int) { delivered.add(count, ordering: .relaxed) }
}

extension Gate {
    /// Waits until the gate is open, or fails it with `message()` after `limit`.
    func wait(orFailAfter limit: Duration, _ message: @escaping @Sendable () -> String) async throws(BenchFailure) {
        let watchdog = Task { [self] in
            try await Task.sleep(for: limit)
            open(.failure(BenchFailure(message())))
        }
        defer { watchdog.cancel() }
        try await wait()
    }
}

/// The consumers' bookkeeping, on the swarm's thread: each consumer must receive its partition's
/// offsets in order, each exactly once; offset 0 primes, offset o ≥ 1 of partition p is measured
/// record (o - 1) × partitions + p, whose value starts with its send time. Keeps, per record, its
/// send time, the latest receive time and how many consumers got it, and every delivery's latency.
struct DeliveryTracker: SwarmHandler {
    let progress = DeliveryProgress()
    private let consumerPartitions: [Int]
    private let partitions: Int
    private let records: Int
    /// Consumers reading each partition.
    private let readersPerPartition: Int
    private var expectedNext: [Int64]
    private var finishedConsumers = 0
    private var sendTimes: [UInt64]
    private var lastReceived: [UInt64]
    private var receivers: [Int32]
    private var latencies = nanosecondHistogram()
    /// Deliveries of measured records so far.
    private(set) var deliveries = 0

    init(consumerPartitions: [Int], partitions: Int, records: Int) {
        self.consumerPartitions = consumerPartitions
        self.partitions = partitions
        self.records = records
        readersPerPartition = consumerPartitions.count / partitions
        expectedNext = Array(repeating: 0, count: consumerPartitions.count)
        sendTimes = Array(repeating: 0, count: records)
        lastReceived = Array(repeating: 0, count: records)
        receivers = Array(repeating: 0, count: records)
    }

    /// The offset after the last measured record of `partition`.
    private func endOffset(of partition: Int) -> Int64 {
        Int64(1 + records / partitions + (partition < records % partitions ? 1 : 0))
    }

    mutating func received(consumer: Int, requested: Int64, batches: UnsafeRawBufferPointer, next: Int64, logEnd: Int64,
                           at time: UInt64) throws(BenchFailure) -> Int64 {
        let partition = consumerPartitions[consumer]
        var failure: BenchFailure?
        var delivered = 0
        try forEachBatch(in: batches) { header, batch throws(BenchFailure) in
            do {
                try RecordBatch.forEachRecord(in: batch) { record in
                    let offset = header.baseOffset + record.offsetDelta
                    guard failure == nil, offset >= requested else { return }
                    guard offset == expectedNext[consumer] else {
                        failure = BenchFailure("consumer \(consumer) of partition \(partition) got offset \(offset) where \(expectedNext[consumer]) was next")
                        return
                    }
                    expectedNext[consumer] += 1
                    if offset == 0 {
                        if progress.notePrimed() == consumerPartitions.count { progress.primed.open() }
                        return
                    }
                    let index = Int(offset - 1) * partitions + partition
                    guard index < records, let sent = sendTime(of: record) else {
                        failure = BenchFailure("consumer \(consumer) got record \(partition)/\(offset), which the producer did not send")
                        return
                    }
                    sendTimes[index] = sent
                    lastReceived[index] = max(lastReceived[index], time)
                    receivers[index] += 1
                    latencies.record(time - min(time, sent))
                    delivered += 1
                }
            } catch {
                throw BenchFailure("consumer \(consumer): a bad batch in a fetch reply: \(error)")
            }
        }
        if let failure { throw failure }
        deliveries += delivered
        progress.noteDelivered(delivered)
        if delivered > 0, expectedNext[consumer] == endOffset(of: partition) {
            finishedConsumers += 1
            if finishedConsumers == consumerPartitions.count { progress.done.open() }
        }
        return next
    }

    func abandon(_ failure: BenchFailure) {
        progress.primed.open(.failure(failure))
        progress.done.open(.failure(failure))
    }

    /// The send time a measured record's value starts with, read in place; nil if the value is shorter.
    private func sendTime(of record: RecordBatch.EncodedRecord) -> UInt64? {
        // Record layout: length, attributes, timestamp delta, offset delta, key length, key, value length, value, headers.
        var reader = WireReader(record.bytes, errorCode: .corruptBatch)
        do {
            _ = try reader.readVarint()
            _ = try reader.read(UInt8.self)
            _ = try reader.readZigZag()
            _ = try reader.readZigZag()
            let keyLength = try reader.readZigZag()
            if keyLength > 0 { _ = try reader.readRaw(count: Int(keyLength)) }
            guard try reader.readZigZag() >= 8 else { return nil }
            return try reader.read(UInt64.self)
        } catch {
            return nil
        }
    }

    /// Produce → last consumer per record and produce → every delivery; fails unless every
    /// measured record reached every consumer of its partition.
    func figures(section: String) throws(BenchFailure) -> (last: LatencyFigures, delivery: LatencyFigures) {
        var last = nanosecondHistogram()
        for index in 0..<records {
            guard receivers[index] == readersPerPartition else {
                throw BenchFailure("\(section): record \(index) (partition \(index % partitions)) reached \(receivers[index]) of its \(readersPerPartition) consumers")
            }
            last.record(lastReceived[index] - min(lastReceived[index], sendTimes[index]))
        }
        return (LatencyFigures(nanoseconds: last), LatencyFigures(nanoseconds: latencies))
    }
}

/// `1,234 µs`.
private func µs(_ value: Double) -> String { "\(grouped(Int(value.rounded()))) µs" }
