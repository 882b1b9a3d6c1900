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

/// The results table, as Markdown or CSV.
struct BenchReport {
    private static let columns: [(title: String, csvName: String, rightAligned: Bool)] = [
        ("section", "section", false), ("case", "case", false), ("record", "record_bytes", true), ("runs", "runs", true),
        ("records", "records", true), ("seconds", "seconds", true), ("records/s", "records_per_second", true),
        ("MB/s", "megabytes_per_second", true), ("p50 µs", "p50_us", true), ("p90 µs", "p90_us", true),
        ("p99 µs", "p99_us", true), ("p99.9 µs", "p999_us", true), ("max µs", "max_us", true),
        ("vs raw", "vs_raw", true), ("notes", "notes", false),
    ]

    /// The CSV header line, for tests and scripts.
    static var csvHeader: String { columns.map(\.csvName).joined(separator: ",") }

    var rows: [BenchRow] = []
    var goals: [BenchGoal] = []
    /// Lines printed after the goals (where a figure's time goes).
    var notes: [String] = []

    /// A Markdown table; large numbers grouped by thousands, ratios as percentages.
    func markdown() -> String {
        var lines = [
            "| " + Self.columns.map(\.title).joined(separator: " | ") + " |",
            "|" + Self.columns.map { $0.rightAligned ? "---:|" : "---|" }.joined(),
        ]
        for row in rows {
            let latency = row.latency
            let cells: [String] = [
                row.section, row.scenario, "\(row.recordBytes) B", "\(row.runs)", grouped(row.median.records),
                decimal(row.median.seconds, digits: 2), grouped(Int(row.median.recordsPerSecond.rounded())),
                decimal(row.median.megabytesPerSecond, digits: 1),
                latency.map { decimal($0.p50, digits: 0) } ?? "", latency.map { decimal($0.p90, digits: 0) } ?? "",
                latency.map { decimal($0.p99, digits: 0) } ?? "", latency.map { decimal($0.p999, digits: 0) } ?? "",
                latency.map { decimal($0.max, digits: 0) } ?? "", row.versusRaw.map(percent) ?? "", row.notes,
            ]
            lines.append("| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    /// CSV (RFC 4180) with a header line; plain numbers, ratios as fractions, empty where a
    /// column means nothing for the section.
    func csv() -> String {
        var lines = [Self.csvHeader]
        for row in rows {
            let latency = row.latency
            let cells: [String] = [
                row.section, row.scenario, "\(row.recordBytes)", "\(row.runs)", "\(row.median.records)",
                decimal(row.median.seconds, digits: 4), decimal(row.median.recordsPerSecond, digits: 0),
                decimal(row.median.megabytesPerSecond, digits: 2),
                latency.map { decimal($0.p50, digits: 1) } ?? "", latency.map { decimal($0.p90, digits: 1) } ?? "",
                latency.map { decimal($0.p99, digits: 1) } ?? "", latency.map { decimal($0.p999, digits: 1) } ?? "",
                latency.map { decimal($0.max, digits: 1) } ?? "", row.versusRaw.map { decimal($0, digits: 3) } ?? "", row.notes,
            ]
            lines.append(cells.map(csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n")
    }
}
