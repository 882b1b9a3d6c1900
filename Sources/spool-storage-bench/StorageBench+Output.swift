import BenchmarkSupport
import Foundation

/// Progress summaries and the final output.
extension StorageBench {
    /// The notes of an append row: batch shape, CPU use, device flushes, an early stop.
    func appendNotes(_ run: AppendRun, shape: RecordShape) -> String {
        var notes = ["\(shape.recordsPerBatch) records per batch", "CPU \(decimal(run.cpuCores, digits: 2)) cores"]
        if let flushes = run.deviceFlushes {
            notes.append("\(grouped(flushes)) device flushes (\(grouped(Int((Double(flushes) / run.throughput.seconds).rounded())))/s)")
        }
        if run.reachedTimeLimit {
            notes.append("stopped at the \(appendTimeLimit) s limit after \(run.throughput.bytes >> 20) of \(bytes.bytes >> 20) MiB")
        }
        return notes.joined(separator: "; ")
    }

    /// One progress figure: `123.4 MB/s, 1,234,567 records/s, 2.35 s`.
    func summary(_ run: Throughput) -> String {
        var parts = ["\(decimal(run.megabytesPerSecond, digits: 1)) MB/s"]
        if run.records > 0 { parts.append("\(grouped(Int(run.recordsPerSecond.rounded()))) records/s") }
        parts.append("\(decimal(run.seconds, digits: 2)) s")
        return parts.joined(separator: ", ")
    }

    /// The output: a Markdown report (context, table, legend, goals, total time), or bare CSV with
    /// everything else written to stderr.
    func render(_ report: Report, directory: BenchDirectory, load: (start: String, end: String), elapsed: Double) -> String {
        let info = ProcessInfo.processInfo
        let command = CommandLine.arguments.map(shellQuoted).joined(separator: " ")
        let machine = "Machine: \(info.activeProcessorCount) cores, \(info.physicalMemory >> 30) GiB RAM, "
            + "\(info.operatingSystemVersionString); files on \(directory.filesystem.summary); \(Date())"
        let loadLine = "Load average (1, 5, 15 min): \(load.start) at the start, \(load.end) at the end"
        let goals = report.goals.isEmpty ? [] : ["", "Goals:"] + report.goals.map(\.line)
        let total = "Total time: \(decimal(elapsed, digits: 1)) s"
        if csv {
            FileHandle.standardError.write(Data((["Command: \(command)", machine, loadLine] + goals + [total, ""]).joined(separator: "\n").utf8))
            return report.csv()
        }
        let legend = """
            MB = 10^6 bytes. append and read count record values; disk and recovery count file bytes. The disk \
            section writes a fresh file that grows, like a log segment. Each figure is the median of `runs` runs; \
            the cases of a section take turns run by run, so a drifting machine slows them alike. `vs interval`: \
            bandwidth over the `fsync: interval` row of the same record size; `vs disk`: over the best write + \
            fdatasync row. CPU: process CPU time per second (broker and producers). Device flushes count the whole \
            disk (/proc/diskstats), other processes included. partitions: `seconds` is the time of the case (the sum \
            of its requests in a latency case, whose p50 and p99 are in the notes); memory and descriptors are \
            spoold's, from /proc.
            """
        // Two trailing spaces make Markdown keep the context lines apart.
        let header = ["## spool-storage-bench", "", "Command: `\(command)`  ", machine + "  ", loadLine, ""]
        return (header + [report.markdown(), "", legend] + goals + ["", total]).joined(separator: "\n")
    }
}
