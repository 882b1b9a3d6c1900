import BenchmarkSupport
import ArgumentParser
import Foundation
import Logging
import Spool

/// `spool bench`: produce, consume and end-to-end latency against a broker, next to raw
/// ZeroMQ DEALER→ROUTER with no broker, measured in the same run. `spool bench` alone (or
/// `spool bench all`) runs every section; `produce`, `consume`, `e2e` and `raw` run one.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure produce and consume throughput and end-to-end latency against a broker, next to raw ZeroMQ.",
        discussion: """
            Sections, run in this order once per run (so a machine whose speed drifts slows \
            them alike), each figure being the median of --runs runs:
            - produce: --producers clients, each with its own connection and Producer \
            (--linger, --batch-bytes), enqueue --count records of --size random bytes between \
            them, unkeyed (each producer's sticky partitioner fills a batch for one partition, \
            then moves to the next), then flush. Timed from the first enqueue to the last \
            acknowledgement; the topic must then hold exactly --count records.
            - consume: one client reads that topic back from the earliest offset, one \
            long-polling stream per partition, until the last record.
            - latency: one producer with linger 0 sends --latency-count records at --rate per \
            second, paced by the clock; each value starts with its send time. A reader in this \
            process (own connection, long poll, already waiting) records receive time minus \
            send time in an HdrHistogram: p50, p90, p99, p99.9 and max, in µs.
            - request: durable request/response: one producer with linger 0 sends \
            --round-trips records one at a time, each awaiting its acknowledgement.
            - raw: the transport's own limit: a ROUTER on tcp://127.0.0.1:* and a DEALER in this \
            process, a thread each, no broker; the DEALER sends --count one-frame messages of \
            --size bytes as fast as it can. Needs no broker.
            - rtt: the transport's round trip, no broker: the DEALER sends one --size message, \
            the ROUTER echoes it, --round-trips times in a row; p50 … max in µs.
            - disk: the disk's durable append, no broker: --syncs times, a --size pwrite at the \
            end of a scratch file in --disk-directory (put it on the broker's data directory's \
            filesystem) and an fdatasync; p50 … max in µs.
            - wakeup: what a thread hand-off costs, no broker: a thread asleep in read on an \
            eventfd is woken by a write every millisecond, --round-trips times (at most 2,000); \
            p50 … max of write → the sleeper running. Under fsync always, the request section \
            then splits its p50 into rtt, fdatasync and the rest, next to a wake-up's cost.

            The goals compare the broker's figures with the limits measured in the same run: \
            end-to-end latency against rtt (and disk under fsync always), request/response \
            against 1 / (rtt p50 + disk p50), produce against raw.

            Every run creates fresh topics, bench-<random> (produce, consume) and \
            bench-<random>-latency, with --partitions partitions and fsync=--fsync. They are \
            left on the broker: remove them with `spool topics delete <name> --yes`.

            MB = 10^6 bytes of record values. Results go to stdout (Markdown, or CSV with --csv); \
            progress, one line per section and run, to stderr.

            Subcommands: all (the default: every section, or those --section names), produce, \
            consume (runs produce first to have something to read, reports both), e2e (the \
            latency section, with rtt, disk and wakeup for its goals), request (with rtt, disk \
            and wakeup), raw, rtt, disk, wakeup. Every subcommand takes the options below and --csv. \
            Three more have options of their own and are not part of all: writers (conditional \
            appends under contention), clients (fan-out to many consumers, and what each client \
            costs the broker in RSS and CPU) and fairness (small produces while another client \
            reads a large backlog); see `spool bench <name> --help`.

            Examples:
              spool bench
              spool bench produce --fsync never --producers 4 --partitions 4
              spool bench e2e --rate 20000 --latency-count 100000
              spool bench raw --count 10000000
              spool bench e2e --fsync never
              spool bench request --disk-directory /var/lib/spool
              spool bench all --csv > results.csv
              spool bench clients --clients 1000 --rate 1000
              spool bench fairness --backlog-mib 256
            """,
        subcommands: [All.self, Produce.self, Consume.self, EndToEnd.self, Request.self, Raw.self, RoundTrip.self, Disk.self, Wakeup.self, BenchWriters.self,
                      BenchClients.self, BenchFairness.self],
        defaultSubcommand: All.self
    )

    /// `spool bench all`: every section, or those `--section` names.
    struct All: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run every section (the default), or those --section names.")

        @OptionGroup var options: BenchOptions

        @Option(name: .customLong("section"), help: "Run only this section (produce, consume, latency, request, raw, rtt, disk, wakeup); repeat for several. consume needs produce.")
        var sections: [BenchOptions.Section] = []

        @Flag(help: "Run only the raw section (ZeroMQ DEALER→ROUTER, no broker needed): the same as `spool bench raw`.")
        var raw = false

        /// The sections to run, in their order.
        var selectedSections: [BenchOptions.Section] {
            if raw { return [.raw] }
            if sections.isEmpty { return BenchOptions.Section.allCases }
            return BenchOptions.Section.allCases.filter(sections.contains)
        }

        func validate() throws {
            if raw && !sections.isEmpty { throw ValidationError("--raw runs only the raw section: use either --raw or --section") }
            try options.validate(sections: selectedSections)
        }

        func run() async throws { try await options.run(sections: selectedSections) }
    }

    /// `spool bench produce`.
    struct Produce: BenchSubcommand {
        static let configuration = CommandConfiguration(abstract: "Produce throughput: --producers Producers publish --count records.")
        static let sections: [BenchOptions.Section] = [.produce]
        @OptionGroup var options: BenchOptions
    }

    /// `spool bench consume`.
    struct Consume: BenchSubcommand {
        static let configuration = CommandConfiguration(abstract: "Consume throughput: fills a fresh topic (the produce section), then reads it back.")
        static let sections: [BenchOptions.Section] = [.produce, .consume]
        @OptionGroup var options: BenchOptions
    }

    /// `spool bench e2e`.
    struct EndToEnd: BenchSubcommand {
        static let configuration = CommandConfiguration(commandName: "e2e", abstract: "End-to-end latency: send → receive at --rate records/s, p50 … max, next to rtt and disk.")
        static let sections: [BenchOptions.Section] = [.latency, .rtt, .disk, .wakeup]
        @OptionGroup var options: BenchOptions
    }

    /// `spool bench request`.
    struct Request: BenchSubcommand {
        static let configuration = CommandConfiguration(abstract: "Durable request/response: one record at a time, each awaiting its acknowledgement, next to rtt and disk.")
        static let sections: [BenchOptions.Section] = [.request, .rtt, .disk, .wakeup]
        @OptionGroup var options: BenchOptions
    }

    /// `spool bench raw`.
    struct Raw: BenchSubcommand {
        static let configuration = CommandConfiguration(abstract: "Raw ZeroMQ DEALER→ROUTER throughput, no broker.")
        static let sections: [BenchOptions.Section] = [.raw]
        @OptionGroup var options: BenchOptions
    }

    /// `spool bench rtt`.
    struct RoundTrip: BenchSubcommand {
        static let configuration = CommandConfiguration(commandName: "rtt", abstract: "Raw ZeroMQ DEALER↔ROUTER round trip, p50 … max, no broker.")
        static let sections: [BenchOptions.Section] = [.rtt]
        @OptionGroup var options: BenchOptions
    }

    /// `spool bench wakeup`.
    struct Wakeup: BenchSubcommand {
        static let configuration = CommandConfiguration(abstract: "A sleeping thread woken through an eventfd: the cost of a thread hand-off, no broker.")
        static let sections: [BenchOptions.Section] = [.wakeup]
        @OptionGroup var options: BenchOptions
    }

    /// `spool bench disk`.
    struct Disk: BenchSubcommand {
        static let configuration = CommandConfiguration(abstract: "The disk's write + fdatasync, p50 … max, in --disk-directory, no broker.")
        static let sections: [BenchOptions.Section] = [.disk]
        @OptionGroup var options: BenchOptions
    }
}

/// A `spool bench` subcommand that runs fixed sections with the shared options.
protocol BenchSubcommand: AsyncParsableCommand {
    /// The sections it runs, in order.
    static var sections: [BenchOptions.Section] { get }
    var options: BenchOptions { get }
}

extension BenchSubcommand {
    func validate() throws { try options.validate(sections: Self.sections) }
    func run() async throws { try await options.run(sections: Self.sections) }
}

/// The options every `spool bench` subcommand shares, and the run itself.
struct BenchOptions: ParsableArguments {
    /// The benchmark's sections, in the order they run.
    enum Section: String, ExpressibleByArgument, CaseIterable, Sendable {
        case produce, consume, latency, request, raw, rtt, disk, wakeup

        /// Sections that need no broker.
        var isBrokerless: Bool { [.raw, .rtt, .disk, .wakeup].contains(self) }
    }

    /// The topics' durability policy, as named in the broker configuration.
    enum FsyncPolicy: String, ExpressibleByArgument, CaseIterable, Sendable {
        case always, interval, never
    }

    @OptionGroup var connection: ConnectionOptions

    @Option(help: ArgumentHelp("Record value bytes (raw: message bytes); 1 to 1000000, at least 8 for the latency section.", valueName: "bytes"))
    var size = 100

    @Option(help: "Records the produce section publishes (and consume reads back); messages the raw section sends.")
    var count = 1_000_000

    @Option(help: "Concurrent producers in the produce section, each with its own connection (1 to 256).")
    var producers = 1

    @Option(help: "Partitions of each fresh topic (1 to 1000).")
    var partitions = 1

    @Option(help: "The fresh topics' fsync setting: always (acknowledge once on disk), interval or never.")
    var fsync: FsyncPolicy = .always

    @Option(help: ArgumentHelp("Records per second the latency section sends (1 to 1000000).", valueName: "records/s"))
    var rate = 10_000

    @Option(help: ArgumentHelp("Records the latency section measures (default: 5 seconds' worth at --rate, 50,000 at the default rate).", valueName: "count"))
    var latencyCount: Int?

    @Option(help: "Round trips of the request, rtt and wakeup sections (1 to 10000000).")
    var roundTrips = 10_000

    @Option(help: "Write + fdatasync pairs of the disk section (1 to 1000000).")
    var syncs = 2_000

    @Option(help: ArgumentHelp("Where the disk section writes its scratch file: a directory on the broker's data directory's filesystem.",
                               valueName: "path"), completion: .directory)
    var diskDirectory = "."

    @Option(help: "Runs of every section; each figure is the median (1 to 100).")
    var runs = 3

    @Flag(help: "Print the results as CSV (ratios as fractions) instead of Markdown; the command line, load average and goals then go to stderr.")
    var csv = false

    @Option(help: ArgumentHelp("The produce section's Producer linger (default: the SDK's, 5 ms).", valueName: "ms"))
    var linger: Double?

    @Option(help: ArgumentHelp("The Producer's batch size, 128 to 1048576 (default: the SDK's, 262144).", valueName: "bytes"))
    var batchBytes: Int?

    /// Most bytes a record value may have: one record per batch must fit the client's 1 MiB batch limit.
    static let maxSize = 1_000_000
    /// The client's default batch limit, which caps `--batch-bytes`.
    static let maxBatchBytes = 1 << 20

    /// Records the latency section measures.
    var effectiveLatencyCount: Int { latencyCount ?? rate * 5 }

    /// Checks the options for a run of `chosen` sections; a bad value is a usage error.
    func validate(sections chosen: [Section]) throws {
        func check(_ condition: Bool, _ message: String) throws {
            if !condition { throw ValidationError(message) }
        }
        try check((1...Self.maxSize).contains(size), "--size must be 1 to \(Self.maxSize) bytes, not \(size)")
        try check(count >= 1, "--count must be at least 1, not \(count)")
        try check((1...256).contains(producers), "--producers must be 1 to 256, not \(producers)")
        try check(count >= producers, "--count (\(count)) must be at least --producers (\(producers))")
        try check((1...1000).contains(partitions), "--partitions must be 1 to 1000, not \(partitions)")
        try check((1...1_000_000).contains(rate), "--rate must be 1 to 1000000 records/s, not \(rate)")
        if let latencyCount { try check(latencyCount >= 1, "--latency-count must be at least 1, not \(latencyCount)") }
        try check((1...100).contains(runs), "--runs must be 1 to 100, not \(runs)")
        try check((1...10_000_000).contains(roundTrips), "--round-trips must be 1 to 10000000, not \(roundTrips)")
        try check((1...1_000_000).contains(syncs), "--syncs must be 1 to 1000000, not \(syncs)")
        var isDirectory: ObjCBool = false
        try check(!chosen.contains(.disk) || (FileManager.default.fileExists(atPath: diskDirectory, isDirectory: &isDirectory) && isDirectory.boolValue),
                  "--disk-directory \(diskDirectory) is not a directory")
        if let linger { try check(linger >= 0 && linger <= 60_000, "--linger must be 0 to 60000 ms, not \(linger)") }
        if let batchBytes {
            try check((128...Self.maxBatchBytes).contains(batchBytes), "--batch-bytes must be 128 to \(Self.maxBatchBytes), not \(batchBytes)")
        }
        try check(!chosen.contains(.consume) || chosen.contains(.produce),
                  "--section consume reads what the produce section wrote: add --section produce")
        try check(!chosen.contains(.latency) || size >= 8,
                  "--size must be at least 8 for the latency section (each value carries its 8-byte send time), not \(size)")
    }

    /// The Producer settings of the produce section.
    var producerConfiguration: ProducerConfiguration {
        var configuration = ProducerConfiguration()
        if let linger { configuration.linger = .microseconds(Int64((linger * 1000).rounded())) }
        if let batchBytes { configuration.batchBytes = batchBytes }
        return configuration
    }

    /// Runs `chosen` sections `runs` times and prints the report; a failure is a one-line error, exit 1.
    func run(sections chosen: [Section]) async throws {
        try await reportingBenchFailures { try await measureAndPrint(chosen) }
    }

    private func measureAndPrint(_ chosen: [Section]) async throws {
        let progress = BenchmarkProgress()
        let loadAtStart = loadAverage()
        var broker: BrokerBench?
        if chosen.contains(where: { !$0.isBrokerless }) {
            let admin = try await connection.connect()
            var logHandler = StreamLogHandler.standardError(label: "spool.bench")
            logHandler.logLevel = .warning
            broker = BrokerBench(connection: connection, admin: admin, size: size, partitions: Int32(partitions), fsync: fsync.rawValue,
                                 logger: Logger(label: "spool.bench", factory: { _ in logHandler }))
            progress.say("broker \(connection.endpoint); \(size)-byte records, \(partitions) partition\(partitions == 1 ? "" : "s"), fsync \(fsync.rawValue)")
        }
        defer { broker?.admin.close() }

        var produced: [Throughput] = [], consumed: [Throughput] = [], latencies: [LatencyRun] = [], raws: [Throughput] = []
        var requests: [LatencyRun] = [], roundTrips: [LatencyRun] = [], disks: [LatencyRun] = [], wakeups: [LatencyRun] = []
        let configuration = producerConfiguration
        for number in 1...runs {
            let tag = "run \(number)/\(runs)"
            if let broker, chosen.contains(.produce) {
                let (topic, result) = try await broker.produce(count: count, producers: producers, configuration: configuration)
                produced.append(result)
                progress.say("produce \(tag), \(topic): \(summary(result))")
                if chosen.contains(.consume) {
                    let result = try await broker.consume(topic: topic)
                    consumed.append(result)
                    progress.say("consume \(tag), \(topic): \(summary(result))")
                }
            }
            if let broker, chosen.contains(.latency) {
                let result = try await broker.latency(count: effectiveLatencyCount, rate: rate, batchBytes: configuration.batchBytes)
                latencies.append(result)
                progress.say("latency \(tag): p50 \(decimal(result.latency.p50, digits: 0)) µs, p99 \(decimal(result.latency.p99, digits: 0)) µs, "
                             + "max \(decimal(result.latency.max, digits: 0)) µs at \(grouped(Int(result.sending.recordsPerSecond.rounded()))) records/s")
            }
            if let broker, chosen.contains(.request) {
                let result = try await broker.requestResponse(count: self.roundTrips)
                requests.append(result)
                progress.say("request \(tag): \(grouped(Int(result.sending.recordsPerSecond.rounded()))) requests/s, p50 \(decimal(result.latency.p50, digits: 0)) µs")
            }
            if chosen.contains(.raw) {
                let result = try await RawBench(count: count, size: size).run()
                raws.append(result)
                progress.say("raw \(tag): \(summary(result))")
            }
            if chosen.contains(.rtt) {
                let result = try await RoundTripBench(count: self.roundTrips, size: size).run()
                roundTrips.append(result)
                progress.say("rtt \(tag): p50 \(decimal(result.latency.p50, digits: 0)) µs, p99 \(decimal(result.latency.p99, digits: 0)) µs")
            }
            if chosen.contains(.disk) {
                let result = try DiskBench(directory: diskDirectory, count: syncs, size: size).run()
                disks.append(result)
                progress.say("disk \(tag): p50 \(decimal(result.latency.p50, digits: 0)) µs, \(grouped(Int(result.sending.recordsPerSecond.rounded()))) syncs/s")
            }
            if chosen.contains(.wakeup) {
                let result = try WakeupBench(count: min(self.roundTrips, 2_000)).run()
                wakeups.append(result)
                progress.say("wakeup \(tag): p50 \(decimal(result.latency.p50, digits: 0)) µs, p99 \(decimal(result.latency.p99, digits: 0)) µs")
            }
        }

        let report = makeReport(produced: produced, consumed: consumed, latencies: latencies, raws: raws,
                                limits: Limits(requests: requests, roundTrips: roundTrips, disks: disks, wakeups: wakeups))
        print(render(report, sections: chosen, load: (loadAtStart, loadAverage()), elapsed: progress.elapsedSeconds))
    }

    /// One progress figure: `1,234,567 records/s, 123.5 MB/s, 2.35 s`.
    private func summary(_ run: Throughput) -> String {
        "\(grouped(Int(run.recordsPerSecond.rounded()))) records/s, \(decimal(run.megabytesPerSecond, digits: 1)) MB/s, \(decimal(run.seconds, digits: 2)) s"
    }

    /// The runs of the sections that measure limits (rtt, disk, wakeup) and of the request section.
    struct Limits {
        var requests: [LatencyRun]
        var roundTrips: [LatencyRun]
        var disks: [LatencyRun]
        var wakeups: [LatencyRun]
    }

    /// Each percentile's median over `runs`.
    private func medianFigures(_ runs: [LatencyRun]) -> LatencyFigures {
        LatencyFigures(p50: median(runs.map(\.latency.p50)), p90: median(runs.map(\.latency.p90)), p99: median(runs.map(\.latency.p99)),
                       p999: median(runs.map(\.latency.p999)), max: median(runs.map(\.latency.max)))
    }

    private func makeReport(produced: [Throughput], consumed: [Throughput], latencies: [LatencyRun], raws: [Throughput],
                            limits: Limits) -> BenchReport {
        var report = BenchReport()
        let partitionText = "\(partitions) partition\(partitions == 1 ? "" : "s")"
        let configuration = producerConfiguration
        let rawMedian = raws.isEmpty ? nil : median(raws.map(\.recordsPerSecond))
        if !produced.isEmpty {
            var row = BenchRow(
                section: "produce",
                scenario: "\(producers) producer\(producers == 1 ? "" : "s"), \(partitionText), fsync \(fsync.rawValue), "
                    + "linger \(milliseconds(configuration.linger)) ms, batch \(configuration.batchBytes) B, unkeyed",
                recordBytes: size, runs: produced, notes: cpuNote(produced))
            if let rawMedian { row.versusRaw = row.median.recordsPerSecond / rawMedian }
            report.rows.append(row)
        }
        if !consumed.isEmpty {
            let row = BenchRow(section: "consume", scenario: "1 client, one stream per partition, from the earliest offset",
                               recordBytes: size, runs: consumed, notes: cpuNote(consumed))
            report.rows.append(row)
            if size == 100 {
                let rate = row.median.recordsPerSecond
                report.goals.append(BenchGoal(text: "consume is \(grouped(Int(rate.rounded()))) records/s of 100 B (goal: at least 2,000,000)",
                                              met: rate >= 2_000_000))
            }
        }
        let roundTrip = limits.roundTrips.isEmpty ? nil : medianFigures(limits.roundTrips)
        let disk = limits.disks.isEmpty ? nil : medianFigures(limits.disks)
        let wakeup = limits.wakeups.isEmpty ? nil : medianFigures(limits.wakeups)
        if !latencies.isEmpty {
            let figures = medianFigures(latencies)
            let worst = latencies.map(\.latency.max).max() ?? 0
            let notes = "target \(grouped(rate)) records/s; sender late p99 \(decimal(median(latencies.map(\.senderLateP99)), digits: 0)) µs; "
                + "worst max \(decimal(worst, digits: 0)) µs; percentiles are medians over runs"
            report.rows.append(BenchRow(section: "latency", scenario: "1 producer, linger 0, \(partitionText), fsync \(fsync.rawValue), send → receive",
                                        recordBytes: size, runs: latencies.map(\.sending), latency: figures, notes: notes))
            report.goals += latencyGoals(figures, roundTrip: roundTrip, disk: disk)
        }
        if !limits.requests.isEmpty {
            let figures = medianFigures(limits.requests)
            let row = BenchRow(section: "request", scenario: "1 producer, linger 0, \(partitionText), fsync \(fsync.rawValue), each send awaits its ack",
                               recordBytes: size, runs: limits.requests.map(\.sending), latency: figures, notes: "latency: send → acknowledgement")
            report.rows.append(row)
            if let roundTrip, let disk, fsync == .always {
                let limit = 1e6 / (roundTrip.p50 + disk.p50)
                let rate = row.median.recordsPerSecond
                report.goals.append(BenchGoal(
                    text: "durable request/response is \(grouped(Int(rate.rounded())))/s, \(percent(rate / limit)) of the limit 1 / (rtt p50 + fdatasync p50) "
                        + "= \(grouped(Int(limit.rounded())))/s (goal: at least 80%)",
                    met: rate >= 0.8 * limit))
                if let wakeup {
                    report.notes.append("request p50 \(µs(figures.p50)) = rtt p50 \(µs(roundTrip.p50)) + fdatasync p50 \(µs(disk.p50)) + "
                                        + "\(µs(figures.p50 - roundTrip.p50 - disk.p50)) "
                                        + "in the broker and the SDK (a thread wake-up costs \(µs(wakeup.p50)) here: wakeup p50)")
                }
            }
        }
        if !raws.isEmpty {
            report.rows.append(BenchRow(section: "raw", scenario: "ZeroMQ DEALER→ROUTER, tcp loopback, no broker, 1 frame per record",
                                        recordBytes: size, runs: raws, notes: "blocking sends of a shared frame; HWM 100,000"))
        }
        if let roundTrip {
            report.rows.append(BenchRow(section: "rtt", scenario: "ZeroMQ DEALER↔ROUTER echo, tcp loopback, no broker, one at a time",
                                        recordBytes: size, runs: limits.roundTrips.map(\.sending), latency: roundTrip, notes: "latency: send → echo received"))
        }
        if let disk {
            report.rows.append(BenchRow(section: "disk", scenario: "pwrite at the end + fdatasync in \(diskDirectory), no broker",
                                        recordBytes: size, runs: limits.disks.map(\.sending), latency: disk, notes: "records/s: syncs per second"))
        }
        if let wakeup {
            report.rows.append(BenchRow(section: "wakeup", scenario: "a thread asleep 1 ms in read(eventfd) woken by a write, no broker",
                                        recordBytes: 8, runs: limits.wakeups.map(\.sending), latency: wakeup,
                                        notes: "latency: write → the sleeper running"))
        }
        if let ratio = report.rows.first(where: { $0.section == "produce" })?.versusRaw {
            report.goals.append(BenchGoal(text: "produce throughput is \(percent(ratio)) of raw ZeroMQ (goal: at least 85%)", met: ratio >= 0.85))
        }
        return report
    }

    /// The end-to-end goals: against the round trip measured in the same run (and, under `fsync:
    /// always`, the disk's fdatasync), or, without those sections, the fixed 1 ms p99.
    private func latencyGoals(_ figures: LatencyFigures, roundTrip: LatencyFigures?, disk: LatencyFigures?) -> [BenchGoal] {
        let at = "at \(grouped(rate)) records/s" + (rate == 10_000 ? "" : " (the goals are set at 10,000)")
        guard let roundTrip else {
            return [BenchGoal(text: "end-to-end p99 is \(µs(figures.p99)) \(at) (goal: below 1,000 µs)", met: figures.p99 < 1000)]
        }
        if fsync == .always {
            guard let disk else { return [] }
            let limit = roundTrip.p50 + 1.5 * disk.p50 + 150
            return [BenchGoal(text: "end-to-end p50 is \(µs(figures.p50)) \(at) (goal: at most rtt p50 + 1.5 × fdatasync p50 + 150 µs = \(µs(limit)))",
                              met: figures.p50 <= limit)]
        }
        return [
            BenchGoal(text: "end-to-end p50 is \(µs(figures.p50)) \(at) (goal: at most 1.5 × rtt p50 = \(µs(1.5 * roundTrip.p50)))",
                      met: figures.p50 <= 1.5 * roundTrip.p50),
            BenchGoal(text: "end-to-end p99 is \(µs(figures.p99)) \(at) (goal: at most 3 × rtt p99 = \(µs(3 * roundTrip.p99)))",
                      met: figures.p99 <= 3 * roundTrip.p99),
        ]
    }

    private func cpuNote(_ runs: [Throughput]) -> String {
        let cores = runs.compactMap(\.cpuCores)
        return cores.isEmpty ? "" : "CPU of spool \(decimal(median(cores), digits: 2)) cores"
    }

    private func milliseconds(_ duration: Duration) -> String {
        let value = duration.seconds * 1000
        return value == value.rounded() ? String(Int(value)) : decimal(value, digits: 3)
    }

    /// The output: a Markdown report (context, table, legend, goals), or bare CSV with the context
    /// written to stderr.
    private func render(_ report: BenchReport, sections: [Section], load: (start: String, end: String), elapsed: Double) -> String {
        let broker = sections.contains(where: { !$0.isBrokerless }) ? "Broker: \(connection.endpoint)" : "No broker (raw, rtt, disk and wakeup only)"
        let goals = (report.goals.isEmpty ? [] : ["", "Goals:"] + report.goals.map(\.line)) + report.notes.map { "\nBudget: \($0)" }
        let legend = """
            MB = 10^6 bytes of record values (message bytes for raw). Throughput rows show the run with the median \
            records/s; latency percentiles are the medians of each percentile over the runs. `vs raw`: produce \
            records/s over raw ZeroMQ messages/s. CPU: this process's CPU time per second (the broker's not included).
            """
        return renderBenchOutput(title: "spool bench", table: report.table, csv: csv, broker: broker, legend: legend, lines: goals,
                                 load: load, elapsed: elapsed)
    }
}

/// `1,234 µs`.
private func µs(_ value: Double) -> String { "\(decimal(value, digits: 0)) µs" }
