import BenchmarkSupport
import Foundation

/// One line of the results table: the median run of one case.
struct ResultRow {
    /// `disk`, `append`, `read`, `recovery`, `keys`, `compaction` or `partitions`.
    let section: String
    /// What was measured, e.g. `write + fdatasync, 64KiB chunks`.
    let scenario: String
    /// Record value size, where records mean something.
    let recordBytes: Int?
    /// Number of runs the median was taken from.
    let runs: Int
    /// The median run.
    let median: Throughput
    /// The median's bandwidth over the `fsync: interval` figure for the same record size.
    var versusInterval: Double?
    /// The median's bandwidth over the disk's write + fdatasync bandwidth.
    var versusDisk: Double?
    /// Anything worth knowing about the case.
    var notes: String

    /// A row for `measurement`'s median run.
    init<Run>(section: String, scenario: String, recordBytes: Int? = nil, measurement: Measurement<Run>,
              versusInterval: Double? = nil, versusDisk: Double? = nil, notes: String = "") {
        self.section = section
        self.scenario = scenario
        self.recordBytes = recordBytes
        runs = measurement.runs.count
        median = measurement.median.throughput
        self.versusInterval = versusInterval
        self.versusDisk = versusDisk
        self.notes = notes
    }
}

/// A target of the issue: a ratio that must reach `target`.
struct Goal {
    /// What is compared, e.g. "`always` / `interval`, 8 producers, 1KiB records".
    let description: String
    /// The measured ratio.
    let ratio: Double
    /// The ratio required.
    let target: Double

    /// One Markdown list item saying whether the goal is met.
    var line: String {
        "- \(description): \(percent(ratio)) (goal ≥ \(percent(target))): \(ratio >= target ? "met" : "MISSED")"
    }
}

/// The results table, rendered as Markdown or CSV, and the goals checked against it.
struct Report {
    /// Column titles for Markdown and names for CSV.
    private static let columns: [(title: String, csvName: String, rightAligned: Bool)] = [
        ("section", "section", false), ("case", "case", false), ("record", "record_bytes", true),
        ("runs", "runs", true), ("MB", "megabytes", true), ("seconds", "seconds", true), ("MB/s", "megabytes_per_second", true),
        ("records/s", "records_per_second", true), ("vs interval", "vs_interval", true), ("vs disk", "vs_disk", true),
        ("notes", "notes", false),
    ]

    /// The rows, in the order they are printed.
    var rows: [ResultRow] = []
    /// The issue's goals this run measured.
    var goals: [Goal] = []

    /// A Markdown table; ratios as percentages, large numbers grouped by thousands.
    func markdown() -> String {
        var lines = [
            "| " + Self.columns.map(\.title).joined(separator: " | ") + " |",
            "|" + Self.columns.map { $0.rightAligned ? "---:|" : "---|" }.joined(),
        ]
        for row in rows {
            let cells: [String] = [
                row.section, row.scenario, row.recordBytes.map { ByteCount($0).description } ?? "",
                "\(row.runs)", row.median.bytes > 0 ? decimal(Double(row.median.bytes) / 1e6, digits: 0) : "",
                decimal(row.median.seconds, digits: 2), row.median.bytes > 0 ? decimal(row.median.megabytesPerSecond, digits: 1) : "",
                row.median.records > 0 ? grouped(Int(row.median.recordsPerSecond.rounded())) : "",
                row.versusInterval.map(percent) ?? "", row.versusDisk.map(percent) ?? "", row.notes,
            ]
            lines.append("| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }

    /// CSV (RFC 4180) with a header line; plain numbers, ratios as fractions.
    func csv() -> String {
        var lines = [Self.columns.map(\.csvName).joined(separator: ",")]
        for row in rows {
            let cells: [String] = [
                row.section, row.scenario, row.recordBytes.map(String.init) ?? "", "\(row.runs)",
                row.median.bytes > 0 ? decimal(Double(row.median.bytes) / 1e6, digits: 3) : "", decimal(row.median.seconds, digits: 4),
                row.median.bytes > 0 ? decimal(row.median.megabytesPerSecond, digits: 2) : "",
                row.median.records > 0 ? decimal(row.median.recordsPerSecond, digits: 0) : "",
                row.versusInterval.map { decimal($0, digits: 3) } ?? "", row.versusDisk.map { decimal($0, digits: 3) } ?? "",
                row.notes,
            ]
            lines.append(cells.map(csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n")
    }
}
