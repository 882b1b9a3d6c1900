import BenchmarkSupport
import ArgumentParser
import Foundation
import Logging
import SpoolStorage

/// `spool-storage-bench`: the storage benchmark of issue "Storage that never loses an
/// acknowledged record". Runs the sections in order and prints one table.
@main
struct StorageBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool-storage-bench",
        abstract: "Measure Spool's storage on this machine: disk limit, append, read, recovery, keys, compaction and many partitions.",
        discussion: """
            Sections, in order:
            - disk: a fresh file written sequentially in chunks, with an fdatasync
              after each chunk (the physical limit) and without (page cache).
            - append: --producers clients, each keeping --in-flight batches
              outstanding, publish --bytes of records per run through a broker
              running in this process (inproc), per fsync policy and record size.
            - read: after the last append case of each record size, its partition
              read back from the page cache through the broker and with
              PartitionLog directly.
            - recovery: opening a log of --recovery-bytes of 1 KiB records in one
              active segment: after a crash, which scans and verifies all of it
              (cold and warm page cache), and after a clean shutdown (cold).
            - keys: the key index. A partition of --key-records records over --keys
              keys, written as an event store writes (each command's 1–3 events
              of one key in a batch of their own): loading one key's history
              (time and bytes read, median of --key-loads random keys), a
              conditional append against a plain one, opening the log after a
              clean close and after a crash; then the same history load where
              the key's records sit in large mixed batches (--mixed-batch-records).
            - compaction: the log cleaner. A compacted partition of
              --compaction-records one-record batches over --keys / 10 keys, in
              16 MiB segments; one pass over every segment but the active one,
              installed (copies synced): its time and the bytes before and after.
            - partitions: many partitions on a real spoold process (--spoold; its
              embedded defaults, fsync: always, plus a data directory here, a free
              loopback port and no HTTP listener). Per --topic-shape S:
              --partition-count / S topics of S partitions in 4 KiB segments,
              created one after another, then --partition-batches batches of 15
              stamped 100 B records written to every partition (--producers
              clients × --in-flight partitions at a time). Then, taking turns,
              opens after a clean stop (SIGTERM, exit awaited) and after kill -9
              while idle, timed from the spawn to the first answered metadata
              request, with memory (VmRSS) and descriptors right after; a read of
              every partition; --latency-requests metadata and list-offsets
              requests of random topics and partitions (p50, p99); one more
              topic created. After every open --verify-partitions random
              partitions are read back, and the full read checks every record:
              any difference stops the bench with an error.

            Every figure is the median of --repeat runs (--append-repeat for
            append; the partitions section creates and writes once per case). MB = 10^6 bytes; append and read count record values, disk
            and recovery count file bytes. Sizes accept B, KiB, MiB and GiB.
            Progress goes to stderr; the results (Markdown, or CSV with --csv) to
            stdout. All files live in a fresh .bench-tmp-XXXXXX inside --dir,
            deleted at the end.
            """
    )

    /// The benchmark's sections.
    enum Section: String, ExpressibleByArgument, CaseIterable, Sendable {
        case disk, append, read, recovery, keys, compaction, partitions
    }

    /// The fsync policies, as named in the broker configuration.
    enum PolicyOption: String, ExpressibleByArgument, CaseIterable, Sendable {
        case always, interval, never
    }

    @Option(help: ArgumentHelp("Directory in which the fresh .bench-tmp-XXXXXX holding every file is made; its filesystem is the one measured (a warning is printed for tmpfs).", valueName: "path"))
    var dir = "."

    @Option(name: .customLong("section"), help: "Run only this section; repeat the option for several. read needs append.")
    var sections: [Section] = Section.allCases

    @Option(name: .customLong("repeat"), help: "Runs per disk, read and recovery case; each figure is their median.")
    var repeatCount = 3

    @Option(help: "Runs per append case; each publishes --bytes through a fresh broker and data directory.")
    var appendRepeat = 3

    @Option(help: "Concurrent producers in the append section, each its own SpoolClient; also the clients that write and read in the partitions section.")
    var producers = 8

    @Option(help: "Batches each producer keeps outstanding (unacknowledged); in the partitions section, partitions each client works on at once.")
    var inFlight = 4

    @Option(help: "Record value bytes per published batch (also per batch of the recovery log).")
    var batchBytes = ByteCount(64 << 10)

    @Option(help: "Record value bytes each append run publishes.")
    var bytes = ByteCount(256 << 20)

    @Option(help: ArgumentHelp("An append run that takes longer stops early, and its row says how far it got.", valueName: "seconds"))
    var appendTimeLimit = 15

    @Option(name: .customLong("record-size"), help: "Record value size of the append and read sections; repeat the option for several.")
    var recordSizes = [ByteCount(100), ByteCount(1 << 10)]

    @Option(name: .customLong("policy"), help: "fsync policy of the append section; repeat the option for several.")
    var policies = PolicyOption.allCases

    @Option(help: ArgumentHelp("How often the interval policy syncs.", valueName: "milliseconds"))
    var intervalMs = 50

    @Option(help: "Bytes written per disk run.")
    var diskBytes = ByteCount(256 << 20)

    @Option(name: .customLong("disk-chunk"), help: "Chunk size of the disk section; repeat the option for several.")
    var diskChunks = [ByteCount(64 << 10), ByteCount(1 << 20), ByteCount(8 << 20)]

    @Option(help: "Size of the log the recovery section opens.")
    var recoveryBytes = ByteCount(1 << 30)

    @Option(help: "Records of the keys section's partition.")
    var keyRecords = 10_000_000

    @Option(help: "Distinct keys of the keys section's partition.")
    var keys = 100_000

    @Option(help: "History loads per run of the keys section (random keys); the figure is their median.")
    var keyLoads = 200

    @Option(help: "Records per batch of the keys section's mixed-batch partition (a tenth of --key-records over a tenth of --keys).")
    var mixedBatchRecords = 1_000

    @Option(help: "Records of the compaction section's partition (one per batch, over --keys / 10 keys).")
    var compactionRecords = 1_000_000

    @Option(help: ArgumentHelp("The spoold executable the partitions section runs. Default: the one next to this executable.", valueName: "path"))
    var spoold: String?

    @Option(help: "Partitions of each partitions case, across its topics.")
    var partitionCount = 10_000

    @Option(name: .customLong("topic-shape"), help: ArgumentHelp("Partitions per topic of a partitions case (it must divide --partition-count); repeat the option for several.", valueName: "partitions"))
    var topicShapes = [1, 100]

    @Option(help: "Batches written to each partition in the partitions section; two fill a 4 KiB segment.")
    var partitionBatches = 6

    @Option(help: "Requests per run of each latency case of the partitions section (metadata of every topic: a tenth, at least 10).")
    var latencyRequests = 1_000

    @Option(help: "Partitions read back after each open in the partitions section (random; all of them if fewer).")
    var verifyPartitions = 100

    @Flag(help: "Print the results as CSV (ratios as fractions) instead of Markdown; the command line and total time then go to stderr.")
    var csv = false

    /// Rejects counts below 1, and the read section without the append section it reads.
    func validate() throws {
        for (name, value) in [("--repeat", repeatCount), ("--append-repeat", appendRepeat), ("--producers", producers),
                              ("--in-flight", inFlight), ("--append-time-limit", appendTimeLimit), ("--interval-ms", intervalMs),
                              ("--key-records", keyRecords), ("--keys", keys), ("--key-loads", keyLoads),
                              ("--mixed-batch-records", mixedBatchRecords), ("--compaction-records", compactionRecords),
                              ("--partition-count", partitionCount), ("--partition-batches", partitionBatches),
                              ("--latency-requests", latencyRequests), ("--verify-partitions", verifyPartitions)]
            where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        if sections.contains(.read), !sections.contains(.append) {
            throw ValidationError("the read section reads what the append section wrote: add --section append")
        }
        for shape in topicShapes where shape < 1 || shape > DataDirectory.maxPartitions || partitionCount % shape != 0 {
            throw ValidationError("--topic-shape \(shape): a topic has 1 to \(DataDirectory.maxPartitions) partitions, and the shape must divide --partition-count (\(partitionCount))")
        }
        if sections.contains(.partitions), !FileManager.default.isExecutableFile(atPath: spooldPath) {
            throw ValidationError("the partitions section runs spoold, and \(spooldPath) is not an executable: build it (swift build --product spoold) or give --spoold")
        }
    }

    /// The spoold the partitions section runs: `--spoold`, or the one next to this executable.
    var spooldPath: String {
        if let spoold { return spoold }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("spoold").path
    }

    /// Runs the chosen sections in order and prints the report.
    mutating func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let progress = BenchmarkProgress()
        let loadAtStart = loadAverage()
        let directory = try BenchDirectory(parent: dir)
        let signalSources = directory.removeOnSignals()
        defer {
            signalSources.forEach { $0.cancel() }
            directory.remove()
        }
        progress.say("files go to \(directory.path), on \(directory.filesystem.summary)")
        if directory.filesystem.isInMemory {
            progress.say("warning: \(directory.path) is on \(directory.filesystem.name), in memory: the disk figures measure RAM; use --dir on a disk")
        }
        var report = Report()
        let diskLimit = sections.contains(.disk) ? try await runDiskSection(directory, progress, &report) : nil
        if sections.contains(.append) {
            try await runAppendAndReadSections(directory, progress, diskLimit: diskLimit, &report)
        }
        if sections.contains(.recovery) {
            try await runRecoverySection(directory, progress, &report)
        }
        if sections.contains(.keys) {
            try await runKeysSection(directory, progress, &report)
        }
        if sections.contains(.compaction) {
            try await runCompactionSection(directory, progress, &report)
        }
        if sections.contains(.partitions) {
            try await runPartitionsSection(directory, progress, &report)
        }
        print(render(report, directory: directory, load: (loadAtStart, loadAverage()), elapsed: progress.elapsedSeconds))
    }
}
