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

    /// The keys section: builds the event-store partition, then measures history loads,
    /// conditional against plain appends and opens, taking turns; then history loads on a
    /// partition of large mixed batches.
    func runKeysSection(_ directory: BenchDirectory, _ progress: BenchmarkProgress, _ report: inout Report) async throws {
        let bench = KeyIndexBench(directory: try directory.freshSubdirectory("keys/events/0"), records: keyRecords, keys: keys,
                                  recordsPerBatch: 1...3, logger: quietLogger, progress: progress)
        progress.say("keys: building \(keyRecords) records over \(keys) keys, 1–3 events of one key per batch")
        let built = try bench.buildLog()
        report.rows.append(ResultRow(section: "keys", scenario: "build: \(keyRecords) records, \(keys) keys, 1–3 per batch (PartitionLog.append)",
                                     recordBytes: bench.valueBytes, measurement: Measurement(runs: [built]), notes: "fsync: never; the key index kept as it goes"))
        let loads = try await measure(runs: repeatCount) { number in
            let load = try bench.timeHistoryLoads(samples: keyLoads, seed: UInt64(number))
            progress.say("keys: history load, run \(number)/\(repeatCount): \(decimal(load.throughput.seconds * 1e3, digits: 3)) ms, \(load.bytesRead / 1024) KiB read, \(load.throughput.records) records")
            return load
        }
        let load = loads.runs.sorted { $0.throughput.seconds < $1.throughput.seconds }[loads.runs.count / 2]
        report.rows.append(ResultRow(section: "keys", scenario: "load one key's history (median of \(keyLoads) random keys)", recordBytes: bench.valueBytes,
                                     measurement: Measurement(runs: [load]),
                                     notes: "\(decimal(load.throughput.seconds * 1e3, digits: 3)) ms, \(load.bytesRead / 1024) KiB read, \(load.throughput.records) records; page cache"))
        report.goals.append(Goal(description: "history load time, 5 ms / measured", ratio: 0.005 / load.throughput.seconds, target: 1))
        report.goals.append(Goal(description: "history load bytes read, 1 MB / measured", ratio: 1e6 / Double(max(load.bytesRead, 1)), target: 1))

        let appendCount = 100_000
        let appends = try await measure([false, true], runs: repeatCount) { conditional, number in
            let run = try bench.timeAppends(count: appendCount, conditional: conditional, seed: 1_000 + UInt64(number))
            progress.say("keys: \(conditional ? "conditional" : "plain") appends, run \(number)/\(repeatCount): \(summary(run))")
            return run
        }
        for (conditional, measurement) in zip([false, true], appends) {
            report.rows.append(ResultRow(section: "keys", scenario: "\(conditional ? "conditional append (last offset, then append)" : "plain append"), \(appendCount) one-record batches",
                                         recordBytes: bench.valueBytes, measurement: measurement,
                                         notes: String(format: "%.2f µs per append", measurement.median.seconds / Double(appendCount) * 1e6)))
        }
        let plain = appends[0].median.seconds, conditional = appends[1].median.seconds
        report.goals.append(Goal(description: "plain / conditional append time (the check's cost)", ratio: plain / conditional, target: 0.5))

        var statistics: KeyIndexStatistics?
        let opens = try await measure([PartitionLog.OpenMode.afterCleanShutdown, .afterCrash], runs: repeatCount) { mode, number in
            let (run, found) = try bench.timeOpen(mode: mode)
            statistics = found
            progress.say("keys: open \(mode), run \(number)/\(repeatCount): \(decimal(run.seconds, digits: 2)) s")
            return run
        }
        for (mode, measurement) in zip([PartitionLog.OpenMode.afterCleanShutdown, .afterCrash], opens) {
            let what = mode == .afterCleanShutdown ? "open after a clean close (key files read and checked)" : "open after a crash (segments scanned, key files checked, the tail indexed)"
            report.rows.append(ResultRow(section: "keys", scenario: what, measurement: measurement,
                                         notes: "\(decimal(measurement.median.seconds, digits: 2)) s; page cache warm"))
        }
        if let statistics {
            report.rows[report.rows.count - 1].notes += String(format: "; index: %d files, %.1f bytes on disk and %.2f bytes in memory per key (%d keys in memory)",
                                                               statistics.files, Double(statistics.fileBytes) / Double(keys),
                                                               Double(statistics.memoryBytes) / Double(keys), statistics.keysInMemory)
        }
        directory.removeItem("\(directory.path)/keys")

        let mixed = KeyIndexBench(directory: try directory.freshSubdirectory("mixed/events/0"), records: keyRecords / 10, keys: max(keys / 10, 1),
                                  recordsPerBatch: mixedBatchRecords...mixedBatchRecords, logger: quietLogger, progress: progress)
        progress.say("keys: building \(keyRecords / 10) records over \(keys / 10) keys in batches of \(mixedBatchRecords) mixed records")
        _ = try mixed.buildLog()
        let mixedLoad = try mixed.timeHistoryLoads(samples: max(keyLoads / 10, 1), seed: 7)
        report.rows.append(ResultRow(section: "keys", scenario: "load one key's history, records in mixed batches of \(mixedBatchRecords)",
                                     recordBytes: mixed.valueBytes, measurement: Measurement(runs: [mixedLoad]),
                                     notes: "\(decimal(mixedLoad.throughput.seconds * 1e3, digits: 2)) ms, \(mixedLoad.bytesRead / 1024) KiB read, \(mixedLoad.throughput.records) records: every batch read whole"))
        directory.removeItem("\(directory.path)/mixed")
    }

    /// The compaction section: one cleaning pass over a partition of one-record batches.
    func runCompactionSection(_ directory: BenchDirectory, _ progress: BenchmarkProgress, _ report: inout Report) async throws {
        let keyCount = max(keys / 10, 1)
        let bench = CompactionBench(directory: "\(directory.path)/compaction/snapshots/0", records: compactionRecords, keys: keyCount, logger: quietLogger)
        let passes = try await measure(runs: repeatCount) { number in
            progress.say("compaction: writing \(compactionRecords) records over \(keyCount) keys, then one pass, run \(number)/\(repeatCount)")
            let pass = try bench.timePass(seed: UInt64(number))
            progress.say("compaction: pass, run \(number)/\(repeatCount): \(decimal(pass.throughput.seconds, digits: 2)) s, \(pass.report)")
            return pass
        }
        let pass = passes.median
        report.rows.append(ResultRow(section: "compaction", scenario: "one pass: \(compactionRecords) one-record batches over \(keyCount) keys, 16 MiB segments",
                                     recordBytes: bench.valueBytes, measurement: passes,
                                     notes: "\(decimal(pass.throughput.seconds, digits: 2)) s; \(decimal(Double(pass.report.bytesBefore) / 1e6, digits: 1)) MB → "
                                         + "\(decimal(Double(pass.report.bytesAfter) / 1e6, digits: 2)) MB, \(pass.report.recordsRemoved) records removed; copies synced; page cache warm"))
        directory.removeItem("\(directory.path)/compaction")
    }

    /// The partitions section: per topic shape, a real spoold with that many partitions (see
    /// ``PartitionsBench``); the opens after a clean stop and after kill -9 take turns.
    func runPartitionsSection(_ directory: BenchDirectory, _ progress: BenchmarkProgress, _ report: inout Report) async throws {
        for shape in topicShapes {
            let layout = PartitionLayout(topics: partitionCount / shape, partitionsPerTopic: shape, batchesPerPartition: partitionBatches)
            let bench = try PartitionsBench(layout: layout, executable: spooldPath, directory: directory, extraTopics: repeatCount,
                                            clientCount: producers, inFlight: inFlight, sampleSize: verifyPartitions, progress: progress)
            defer { bench.killIfRunning() }
            try await runPartitionsCase(bench, progress, &report)
        }
    }

    /// One case of the partitions section: its rows and goals.
    private func runPartitionsCase(_ bench: PartitionsBench, _ progress: BenchmarkProgress, _ report: inout Report) async throws {
        let layout = bench.layout
        let name = layout.description
        func row(_ scenario: String, _ measurement: Measurement<some TimedRun>, recordBytes: Int? = nil, notes: String) {
            report.rows.append(ResultRow(section: "partitions", scenario: "\(name): \(scenario)", recordBytes: recordBytes,
                                         measurement: measurement, notes: notes))
        }
        func duration(_ seconds: Double) -> String {
            seconds < 1 ? "\(decimal(seconds * 1e3, digits: seconds < 0.01 ? 2 : 1)) ms" : "\(decimal(seconds, digits: 2)) s"
        }

        let emptyStart = try await bench.startEmpty()
        progress.say("partitions: \(name): spoold answered on an empty data directory after \(duration(emptyStart)); creating the topics")
        let created = try await bench.createTopics()
        progress.say("partitions: \(name): created in \(decimal(created.seconds, digits: 2)) s; writing \(layout.batchesPerPartition) batches to every partition")
        row("create every topic, one request after another", Measurement(runs: [created]),
            notes: "\(duration(created.seconds / Double(layout.topics))) per topic; segment.bytes \(PartitionLayout.segmentBytes)"
                + (bench.raisedTopicLimit.map { "; spoold given max.topics: \($0) (its default leaves no room for the extra topics)" } ?? ""))
        let written = try await bench.write()
        let range = try bench.segmentsPerPartition()
        let segments = range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)–\(range.upperBound)"
        progress.say("partitions: \(name): written in \(summary(written)); \(segments) segments per partition")
        row("write \(layout.batchesPerPartition) batches of \(PartitionLayout.recordsPerBatch) records to every partition",
            Measurement(runs: [written]), recordBytes: PartitionLayout.recordBytes,
            notes: "\(producers) clients × \(inFlight) partitions at a time, each partition's batches in turn; fsync: always (spoold's default); "
                + "\(segments) segments per partition")

        let endings = PartitionsBench.Ending.allCases
        let opens = try await measure(endings, runs: repeatCount) { ending, number in
            let run = try await bench.reopen(after: ending)
            progress.say("partitions: \(name): \(ending), run \(number)/\(repeatCount): ready after \(duration(run.throughput.seconds)); \(run.usage.description)")
            return run
        }
        for (ending, measurement) in zip(endings, opens) {
            let open = measurement.median
            row(ending.description, measurement,
                notes: "ready = first answered metadata request after the spawn: \(duration(open.throughput.seconds))"
                    + (open.listeningSeconds.map { "; 'listening' logged at \(duration($0))" } ?? "")
                    + "; an empty data directory: \(duration(emptyStart)); the stop before it took \(duration(open.stopSeconds)); "
                    + "spoold verified \(open.verifiedInFull ? "every segment in full" : "with cheap checks"); idle after the open: \(open.usage.description)")
            let goal: Double = ending == .cleanStop ? 1 : 10
            report.goals.append(Goal(description: "\(name), \(ending): \(Int(goal)) s / measured", ratio: goal / open.throughput.seconds, target: 1))
        }

        let read = try await bench.readEveryPartition()
        progress.say("partitions: \(name): read every partition in \(summary(read.throughput)); \(read.after.description)")
        row("read every partition to its end, every record checked", Measurement(runs: [read]), recordBytes: PartitionLayout.recordBytes,
            notes: "idle before: \(read.before.description); idle after: \(read.after.description)")

        for request in PartitionsBench.Request.allCases {
            let count = request == .everyTopicMetadata ? max(latencyRequests / 10, 10) : latencyRequests
            let latencies = try await measure(runs: repeatCount) { number in
                let run = try await bench.timeRequests(request, count: count, seed: UInt64(number))
                progress.say("partitions: \(name): \(request), run \(number)/\(repeatCount): p50 \(duration(run.percentile(0.5))), p99 \(duration(run.percentile(0.99)))")
                return run
            }
            let median = latencies.median
            row(request.description, latencies,
                notes: "\(grouped(count)) requests one after another: p50 \(duration(median.percentile(0.5))), p99 \(duration(median.percentile(0.99)))")
        }

        let extra = try await measure(runs: repeatCount) { number in
            let run = try await bench.timeCreatingOneMoreTopic(number: number)
            progress.say("partitions: \(name): one more topic, run \(number)/\(repeatCount): \(duration(run.seconds))")
            return run
        }
        row("create one more topic of \(layout.partitionsPerTopic) partition\(layout.partitionsPerTopic == 1 ? "" : "s")", extra,
            notes: duration(extra.median.seconds))
        try await bench.finish()
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
