import BenchmarkSupport
import Foundation
import Logging
import SpoolStorage

/// The sections, each adding its rows (and goals) to the report.
extension StorageBench {
    /// The disk section; returns the best write + fdatasync bandwidth (MB/s) and its chunk size.
    func runDiskSection(_ directory: BenchDirectory, _ progress: BenchmarkProgress,
                        _ report: inout Report) async throws -> (megabytesPerSecond: Double, chunk: ByteCount)? {
        let bench = DiskBench(directory: directory.path, totalBytes: diskBytes.bytes)
        let cases = [true, false].flatMap { syncEachChunk in diskChunks.map { (syncEachChunk: syncEachChunk, chunk: $0) } }
        func scenario(_ item: (syncEachChunk: Bool, chunk: ByteCount)) -> String {
            "\(item.syncEachChunk ? "write + fdatasync" : "write only (page cache)"), \(item.chunk) chunks"
        }
        let measurements = try await measure(cases, runs: repeatCount) { item, number in
            let run = try bench.run(chunkBytes: item.chunk.bytes, syncEachChunk: item.syncEachChunk)
            progress.say("disk: \(scenario(item)), run \(number)/\(repeatCount): \(summary(run))")
            return run
        }
        var best: (megabytesPerSecond: Double, chunk: ByteCount, row: Int)?
        for (item, measurement) in zip(cases, measurements) {
            report.rows.append(ResultRow(section: "disk", scenario: scenario(item), measurement: measurement))
            let bandwidth = measurement.median.megabytesPerSecond
            if item.syncEachChunk, bandwidth > best?.megabytesPerSecond ?? 0 { best = (bandwidth, item.chunk, report.rows.count - 1) }
        }
        guard let best else { return nil }
        report.rows[best.row].notes = "the best with fdatasync: the reference of `vs disk`"
        return (best.megabytesPerSecond, best.chunk)
    }

    /// The append section and, after the last run of each record size, the read section on what
    /// that run wrote. Policies take turns run by run. Append rows come first in the report, then read rows.
    func runAppendAndReadSections(_ directory: BenchDirectory, _ progress: BenchmarkProgress,
                                  diskLimit: (megabytesPerSecond: Double, chunk: ByteCount)?,
                                  _ report: inout Report) async throws {
        let bench = AppendBench(directory: directory, producers: producers, inFlight: inFlight, totalBytes: bytes.bytes,
                                timeLimit: .seconds(appendTimeLimit), logger: quietLogger, progress: progress)
        var readRows: [ResultRow] = []
        for size in recordSizes {
            let shape = RecordShape(recordBytes: size.bytes, batchBytes: batchBytes.bytes)
            var lastLog: AppendedLog?
            let measurements = try await measure(policies, runs: appendRepeat) { policy, number in
                await lastLog?.discard()
                let label = "\(policy) \(size) run \(number)/\(appendRepeat)"
                progress.say("append: \(label), \(producers) producers × \(inFlight) in flight, \(shape.recordsPerBatch) records per batch")
                let (run, log) = try await bench.run(policy: fsyncPolicy(policy), shape: shape, label: label)
                lastLog = log
                progress.say("  \(label): \(summary(run.throughput))")
                return run
            }
            let bandwidths = Dictionary(zip(policies, measurements.map(\.median.throughput.megabytesPerSecond)),
                                        uniquingKeysWith: { first, _ in first })
            let interval = bandwidths[.interval]
            for (policy, measurement) in zip(policies, measurements) {
                let bandwidth = measurement.median.throughput.megabytesPerSecond
                report.rows.append(ResultRow(
                    section: "append", scenario: "fsync: \(describe(policy)), \(producers) producers × \(inFlight) in flight",
                    recordBytes: size.bytes, measurement: measurement,
                    versusInterval: interval.map { bandwidth / $0 }, versusDisk: diskLimit.map { bandwidth / $0.megabytesPerSecond },
                    notes: appendNotes(measurement.median, shape: shape)))
            }
            if let interval, let always = bandwidths[.always] {
                report.goals.append(Goal(description: "`always` / `interval`, \(producers) producers, \(size) records",
                                         ratio: always / interval, target: 0.5))
            }
            if let interval, let diskLimit, size.bytes == 1 << 10 {
                report.goals.append(Goal(description: "`interval` / disk write + fdatasync (\(diskLimit.chunk) chunks), 1KiB records",
                                         ratio: interval / diskLimit.megabytesPerSecond, target: 0.5))
            }
            if let lastLog, sections.contains(.read), let policy = policies.last {
                readRows += try await readBack(lastLog, shape: shape, writtenUnder: policy, progress)
            }
            await lastLog?.discard()
        }
        report.rows += readRows
    }

    /// The read section for one partition: through the broker first, then (broker stopped) from storage.
    func readBack(_ log: AppendedLog, shape: RecordShape, writtenUnder policy: PolicyOption,
                  _ progress: BenchmarkProgress) async throws -> [ResultRow] {
        let bench = ReadBench(log: log, shape: shape)
        let size = ByteCount(shape.recordBytes)
        let notes = "the partition the `\(policy)` run wrote, from the page cache; \(ByteCount(ReadBench.readBytes)) reads"
        let fetched = try await measure(runs: repeatCount) { number in
            let run = try await bench.readThroughBroker()
            progress.say("read: broker fetch \(size), run \(number)/\(repeatCount): \(summary(run))")
            return run
        }
        await log.stopBroker()
        let direct = try await measure(runs: repeatCount) { number in
            let run = try bench.readFromStorage(logger: quietLogger)
            progress.say("read: PartitionLog \(size), run \(number)/\(repeatCount): \(summary(run))")
            return run
        }
        return [
            ResultRow(section: "read", scenario: "broker: one client, fetch after fetch", recordBytes: shape.recordBytes,
                      measurement: fetched, notes: notes),
            ResultRow(section: "read", scenario: "storage: PartitionLog.read + LogSlice.read(into:)", recordBytes: shape.recordBytes,
                      measurement: direct, notes: notes),
        ]
    }

    /// The recovery section: builds the log once, then times opens after a crash with a cold
    /// page cache (if it can be dropped) and a warm one, and after a clean shutdown with a cold
    /// one, taking turns.
    func runRecoverySection(_ directory: BenchDirectory, _ progress: BenchmarkProgress, _ report: inout Report) async throws {
        let bench = RecoveryBench(directory: try directory.freshSubdirectory("recovery/\(AppendBench.topic)/0"),
                                  totalBytes: recoveryBytes.bytes,
                                  shape: RecordShape(recordBytes: 1 << 10, batchBytes: batchBytes.bytes),
                                  logger: quietLogger, progress: progress)
        progress.say("recovery: building a \(recoveryBytes) log of 1KiB records")
        try bench.buildLog()
        var cases: [RecoveryBench.Case] = [.init(mode: .afterCrash, cache: .cold), .init(mode: .afterCrash, cache: .warm),
                                           .init(mode: .afterCleanShutdown, cache: .cold)]
        var coldNote = "page cache dropped before each open; a VM's host may still cache its disk"
        if let failure = bench.dropPageCache() {
            progress.say("warning: cannot drop the page cache (\(failure)); measuring with a warm cache only")
            cases = [.init(mode: .afterCrash, cache: .warm), .init(mode: .afterCleanShutdown, cache: .warm)]
            coldNote = "the page cache could not be dropped (\(failure))"
        }
        func scenario(_ recoveryCase: RecoveryBench.Case) -> String {
            "open a \(recoveryBytes) log \(recoveryCase)"
        }
        let measurements = try await measure(cases, runs: repeatCount) { recoveryCase, number in
            if recoveryCase.cache == .cold, let failure = bench.dropPageCache() {
                throw BenchError("cannot drop the page cache: \(failure)")
            }
            let run = try bench.timeOpen(mode: recoveryCase.mode)
            progress.say("recovery: \(scenario(recoveryCase)), run \(number)/\(repeatCount): \(summary(run))")
            return run
        }
        for (recoveryCase, measurement) in zip(cases, measurements) {
            // A clean open reads only indexes and the last index interval: its time is the figure, not a bandwidth.
            let speed = recoveryCase.mode == .afterCleanShutdown
                ? "\(decimal(measurement.median.seconds * 1e3, digits: 1)) ms, the log itself not read"
                : "\(decimal(measurement.median.megabytesPerSecond / 1e3, digits: 2)) GB/s"
            report.rows.append(ResultRow(section: "recovery", scenario: scenario(recoveryCase), recordBytes: 1 << 10, measurement: measurement,
                                         notes: recoveryCase.cache == .cold ? "\(speed); \(coldNote)" : speed))
        }
    }

    /// Logger for brokers and logs; `run()` bootstraps logging so that only warnings and errors
    /// pass, on stderr.
    var quietLogger: Logger { Logger(label: "spool-storage-bench") }

    /// The broker's policy for `option`.
    func fsyncPolicy(_ option: PolicyOption) -> FsyncPolicy {
        switch option {
        case .always: .always
        case .interval: .interval(milliseconds: intervalMs)
        case .never: .never
        }
    }

    /// `always`, `interval (50 ms)`, `never`.
    func describe(_ option: PolicyOption) -> String {
        option == .interval ? "interval (\(intervalMs) ms)" : option.rawValue
    }
}
