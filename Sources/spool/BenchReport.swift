import BenchmarkSupport
import Foundation

/// One line of the results table: the median of a section's runs.
struct BenchRow {
    /// `produce`, `consume`, `latency` or `raw`.
    let section: String
    /// What was measured, e.g. `1 producer, 1 partition, fsync always, linger 5 ms, batch 64KiB`.
    let scenario: String
    /// Record value size (message size for raw).
    let recordBytes: Int
    /// Runs the medians come from.
    let runs: Int
    /// The median run by records per second (for latency: the run with the median achieved rate).
    let median: Throughput
    /// Median of each latency percentile over the runs, in µs (latency rows only).
    var latency: LatencyFigures?
    /// Median produce throughput over median raw throughput (produce rows only).
    var versusRaw: Double?
    /// Anything worth knowing about the case.
    var notes: String

    /// A row for the median of `runs` by records per second.
    init(section: String, scenario: String, recordBytes: Int, runs: [Throughput], latency: LatencyFigures? = nil, notes: String = "") {
        self.section = section
        self.scenario = scenario
        self.recordBytes = recordBytes
        self.runs = runs.count
        median = runs.sorted { $0.recordsPerSecond < $1.recordsPerSecond }[runs.count / 2]
        self.latency = latency
        self.notes = notes
    }
}

/// A target of the issue and whether this run met it.
struct BenchGoal {
    let text: String
    let met: Bool

    var line: String { "- \(text): \(met ? "met" : "MISSED")" }
}

/// A table of results rendered two ways: Markdown for people (numbers grouped by thousands,
/// ratios as percentages) and CSV for scripts (plain numbers, ratios as fractions). Every
/// `spool bench` report is one of these.
struct ReportTable {
    /// One column: its Markdown title, its CSV name, and whether its cells are numbers (right-aligned).
    struct Column {
        let title: String
        let csvName: String
        let rightAligned: Bool

        init(_ title: String, _ csvName: String, rightAligned: Bool = true) {
            self.title = title
            self.csvName = csvName
            self.rightAligned = rightAligned
        }
    }

    let columns: [Column]
    /// Each row's cells, in column order: as Markdown shows them, and as CSV carries them (empty
    /// where a column means nothing for the row).
    var rows: [(markdown: [String], csv: [String])] = []

    init(columns: [Column]) { self.columns = columns }

    /// The CSV header line, for tests and scripts.
    var csvHeader: String { columns.map(\.csvName).joined(separator: ",") }

    /// A Markdown table.
    func markdown() -> String {
        var lines = [
            "| " + columns.map(\.title).joined(separator: " | ") + " |",
            "|" + columns.map { $0.rightAligned ? "---:|" : "---|" }.joined(),
        ]
        for row in rows {
            lines.append("| " + row.markdown.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    /// CSV (RFC 4180) with a header line.
    func csv() -> String {
        ([csvHeader] + rows.map { $0.csv.map(csvField).joined(separator: ",") }).joined(separator: "\n")
    }
}

/// The results table of the throughput and latency sections, as Markdown or CSV.
struct BenchReport {
    private static let columns: [ReportTable.Column] = [
        .init("section", "section", rightAligned: false), .init("case", "case", rightAligned: false), .init("record", "record_bytes"),
        .init("runs", "runs"), .init("records", "records"), .init("seconds", "seconds"), .init("records/s", "records_per_second"),
        .init("MB/s", "megabytes_per_second"), .init("p50 µs", "p50_us"), .init("p90 µs", "p90_us"), .init("p99 µs", "p99_us"),
        .init("p99.9 µs", "p999_us"), .init("max µs", "max_us"), .init("vs raw", "vs_raw"), .init("notes", "notes", rightAligned: false),
    ]

    var rows: [BenchRow] = []
    var goals: [BenchGoal] = []
    /// Lines printed after the goals (where a figure's time goes).
    var notes: [String] = []

    /// The rows as a table: large numbers grouped by thousands and ratios as percentages in
    /// Markdown; plain numbers and ratios as fractions in CSV.
    var table: ReportTable {
        var table = ReportTable(columns: Self.columns)
        for row in rows {
            let latency = row.latency
            let markdown: [String] = [
                row.section, row.scenario, "\(row.recordBytes) B", "\(row.runs)", grouped(row.median.records),
                decimal(row.median.seconds, digits: 2), grouped(Int(row.median.recordsPerSecond.rounded())),
                decimal(row.median.megabytesPerSecond, digits: 1),
                latency.map { decimal($0.p50, digits: 0) } ?? "", latency.map { decimal($0.p90, digits: 0) } ?? "",
                latency.map { decimal($0.p99, digits: 0) } ?? "", latency.map { decimal($0.p999, digits: 0) } ?? "",
                latency.map { decimal($0.max, digits: 0) } ?? "", row.versusRaw.map(percent) ?? "", row.notes,
            ]
            let csv: [String] = [
                row.section, row.scenario, "\(row.recordBytes)", "\(row.runs)", "\(row.median.records)",
                decimal(row.median.seconds, digits: 4), decimal(row.median.recordsPerSecond, digits: 0),
                decimal(row.median.megabytesPerSecond, digits: 2),
                latency.map { decimal($0.p50, digits: 1) } ?? "", latency.map { decimal($0.p90, digits: 1) } ?? "",
                latency.map { decimal($0.p99, digits: 1) } ?? "", latency.map { decimal($0.p999, digits: 1) } ?? "",
                latency.map { decimal($0.max, digits: 1) } ?? "", row.versusRaw.map { decimal($0, digits: 3) } ?? "", row.notes,
            ]
            table.rows.append((markdown, csv))
        }
        return table
    }
}

/// A run's output: in Markdown, a title, the command line, the broker, the load average and the
/// machine, the table, the legend, `lines` (goals, notes) and the total time; with `csv`, the bare
/// CSV table on stdout and the rest (the command line, broker, load and `lines`) on stderr, so
/// the CSV stays parseable.
func renderBenchOutput(title: String, table: ReportTable, csv: Bool, broker: String, legend: String, lines: [String],
                       load: (start: String, end: String), elapsed: Double) -> String {
    let info = ProcessInfo.processInfo
    let command = CommandLine.arguments.enumerated().map { $0.offset == 0 ? "spool" : shellQuoted($0.element) }.joined(separator: " ")
    let context = "Load average (1, 5, 15 min): \(load.start) at the start, \(load.end) at the end; "
        + "\(info.activeProcessorCount) cores; \(Date())"
    let total = "Total time: \(decimal(elapsed, digits: 1)) s"
    if csv {
        FileHandle.standardError.write(Data((["Command: \(command)", broker, context] + lines + [total, ""]).joined(separator: "\n").utf8))
        return table.csv()
    }
    // Two trailing spaces make Markdown keep the context lines apart.
    let header = ["## \(title)", "", "Command: `\(command)`  ", broker + "  ", context, ""]
    return (header + [table.markdown(), "", legend] + lines + ["", total]).joined(separator: "\n")
}
