import ArgumentParser
import BenchmarkSupport
import Foundation
import Logging
import Spool

/// `spool replay`: print a closed range of a topic, or copy it to another topic.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a range of a topic's records, or copy them to another topic, then exit.",
        discussion: """
            Reads from the start (--from-beginning, --offset N, --last N, --since AGE or \
            --from-time TIME) to --until-offset N, --until-time TIME, --count N, or the end of \
            the log as it was when the command started. Without --partition, every partition.

            With --to, copies each record's key, value, headers and timestamp to the other topic \
            through the SDK's idempotent, batching Producer (the partition follows the key there), \
            and leaves out the headers whose names start with spool-dlq-: the saga kit adds them \
            when it dead-letters a record to <topic>.dlq, so `spool replay orders.dlq --to \
            orders` puts the original records back. The command exits 0 once every copy is \
            acknowledged. --rate paces the copy (or the printing).

            On a terminal, a progress bar with records/s and the time left is drawn on standard \
            error (while copying, or while printing to a pipe); nothing when standard error is \
            not a terminal.

            Examples:
              spool replay orders --from-beginning
              spool replay orders --offset 100 --until-offset 199 --format json
              spool replay orders.dlq --from-beginning --to orders
              spool replay orders --since 1h --to orders-copy --rate 500/s
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var read: ReadOptions
    @OptionGroup var output: OutputOptions

    @Option(help: ArgumentHelp("Copy the records to this topic instead of printing them.", valueName: "topic"))
    var to: String?

    @Option(help: ArgumentHelp("At most this many records per second (e.g. 500 or 500/s).", valueName: "N/s"))
    var rate: RateArgument?

    /// The header-name prefix of the saga kit's dead-letter headers, which a copy leaves out.
    static let deadLetterPrefix = "spool-dlq-"

    func validate() throws {
        guard read.hasStart else {
            throw ValidationError("replay needs a start: --from-beginning, --offset N, --last N, --since AGE or --from-time TIME")
        }
        if let to { try reportingNameErrors(to) }
    }

    func run() async throws {
        let client = try await connection.connect(for: read.topic)
        defer { client.close() }
        try await reportingErrors {
            let ranges = try await read.plan(client: client, defaultStart: .earliest, toEnd: true)
            let total = Swift.min(ranges.reduce(0) { $0 + ($1.count ?? 0) }, Int64(read.count ?? Int.max))
            let showsProgress = Terminal.isTerminal(STDERR_FILENO) && (to != nil || !Terminal.isTerminal(STDOUT_FILENO))
            let progress = showsProgress ? ProgressBar(total: total) : nil
            let pacer = rate.map { Pacer(perSecond: $0.perSecond) }
            if let to {
                let producer = try Producer(client: client, logger: Logger(label: "spool", factory: { _ in SwiftLogNoOpLogHandler() }))
                var copied = 0
                try await read.read(client: client, ranges: ranges) { batch in
                    for record in batch {
                        await pacer?.wait()
                        try await producer.enqueue(to: to, key: record.key, value: record.value,
                                                   headers: record.headers.filter { !$0.name.hasPrefix(Self.deadLetterPrefix) },
                                                   timestamp: record.timestamp)
                    }
                    copied += batch.count
                    progress?.update(done: Int64(copied))
                }
                try await producer.close()
                progress?.finish()
                Terminal.writeError("copied \(copied) record\(copied == 1 ? "" : "s") from \(read.topic) to \(to)\n")
            } else {
                let printer = try output.printer(showsPartition: ranges.count > 1)
                var printed: Int64 = 0
                try await read.read(client: client, ranges: ranges) { batch in
                    for record in batch {
                        await pacer?.wait()
                        printer.print(record)
                    }
                    printer.flush()
                    printed += Int64(batch.count)
                    progress?.update(done: printed)
                }
                progress?.finish()
            }
        }
    }
}

/// Throws the SDK's topic-name error as a usage error.
private func reportingNameErrors(_ topic: String) throws {
    do throws(SpoolError) {
        try SpoolClient.checkTopicName(topic)
    } catch {
        throw ValidationError(error.message)
    }
}

/// `--rate`: records per second, written `500` or `500/s`.
struct RateArgument: ExpressibleByArgument, Sendable {
    let perSecond: Double

    init?(argument: String) {
        let number = argument.hasSuffix("/s") ? String(argument.dropLast(2)) : argument
        guard let value = Double(number), value > 0, value.isFinite else { return nil }
        perSecond = value
    }
}

/// Spaces calls of ``wait()`` `1/perSecond` apart on average, from the first call on (no burst
/// after a pause beyond what the schedule allows).
final class Pacer {
    private let interval: Duration
    private let clock = ContinuousClock()
    private var next: ContinuousClock.Instant?

    init(perSecond: Double) { interval = .seconds(1 / perSecond) }

    /// Returns when the next call is due.
    func wait() async {
        let due = next ?? clock.now
        if due > clock.now { try? await clock.sleep(until: due) }
        next = due + interval
    }
}

/// A one-line progress bar on standard error: percent, bar, records, records/s and time left.
/// Redrawn at most ten times a second.
final class ProgressBar {
    private let total: Int64
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private var lastDrawn: ContinuousClock.Instant?
    private var done: Int64 = 0

    init(total: Int64) {
        self.total = total
        started = clock.now
    }

    /// Records `done` records so far and redraws if the last draw is 100 ms old.
    func update(done: Int64) {
        self.done = done
        if let lastDrawn, clock.now - lastDrawn < .milliseconds(100) { return }
        draw()
    }

    /// Draws the final state and ends the line.
    func finish() {
        draw()
        Terminal.writeError("\n")
    }

    private func draw() {
        lastDrawn = clock.now
        let seconds = Swift.max((clock.now - started).seconds, 0.001)
        let perSecond = Double(done) / seconds
        let fraction = total > 0 ? Swift.min(1, Double(done) / Double(total)) : 1
        let width = 30
        let filled = Int((fraction * Double(width)).rounded(.down))
        let left = perSecond > 0 ? Int((Double(total - done) / perSecond).rounded(.up)) : 0
        let eta = done >= total ? "done" : "ETA \(left / 60):\(String(left % 60).leftPadded(to: 2))"
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        Terminal.writeError("\r\u{1B}[K\(Int(fraction * 100))% [\(bar)] \(done)/\(total) records, \(Int(perSecond)) records/s, \(eta)")
    }
}
