import ArgumentParser
import Foundation
import Logging
import Spool

/// `spool tail`: follow a topic.
struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a topic's records as they arrive.",
        discussion: """
            Reads every partition of the topic at once (or only --partition) and prints records as \
            they arrive: each partition's records in offset order, partitions interleaved. Text \
            lines are offset<TAB>key<TAB>value, or partition/offset<TAB>key<TAB>value when more \
            than one partition is read; --template chooses other fields, --format json prints one \
            lossless JSON object per line (what `spool publish --format json` reads back).

            Starts at the end of the log, or at --from-beginning, --offset N, --last N (per \
            partition), --since AGE or --from-time TIME (--from takes any of these: beginning, \
            end, an offset, a time or an age). Follows new records (long poll, no busy polling) \
            until Ctrl-C (exit 0), or stops at --exit-at-end (the end as it was when the command \
            started), --count N, --until-offset N or --until-time TIME (--until: end, an offset or \
            a time).

            With --group, reads as a member of that consumer group: the group's partitions are \
            shared with its other members, text lines start with partition/offset, a partition \
            starts at the group's committed offset (or the first record when there is none), and \
            what was printed is committed every second and at Ctrl-C (SIGINT or SIGTERM), so the \
            next member resumes after it.

            Examples:
              spool tail orders
              spool tail orders --from-beginning --exit-at-end
              spool tail orders --last 10 --partition 2
              spool tail orders --since 10m --until-time 2026-11-21T10:00:00Z --format json
              spool tail orders --template '{time} {key} {header:spool-event-type} {value}'
              spool tail orders --group audit
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var read: ReadOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Exit after the last record that existed when the command started.")
    var exitAtEnd = false

    @Option(help: ArgumentHelp("Consume as a member of this consumer group (all partitions, committed offsets).", valueName: "group"))
    var group: String?

    func validate() throws {
        guard group != nil else { return }
        if exitAtEnd || read.hasStart || read.partition != nil || read.hasStop {
            throw ValidationError("--group reads from the group's committed offsets: it cannot be combined with --partition, a start, a stop or --exit-at-end")
        }
    }

    func run() async throws {
        guard let group else { return try await follow() }
        let printer = try output.printer(showsPartition: true)
        let client = try await connection.connect(for: read.topic)
        defer { client.close() }
        let consumer = try await reportingErrors {
            try Consumer(client: client, group: group, topics: [read.topic],
                         logger: Logger(label: "spool", factory: { _ in SwiftLogNoOpLogHandler() }))
        }
        let signals = onInterrupt { Task { await consumer.close() } }
        defer { signals.forEach { $0.cancel() } }
        try await reportingErrors {
            var records = consumer.makeAsyncIterator()
            while let record = try await records.next() {
                printer.print(record)
                printer.flush()  // a record is committed once processed: it must have left the process by then
            }
        }
    }

    /// Reads without a group; Ctrl-C ends the read and the command exits 0.
    private func follow() async throws {
        let client = try await connection.connect(for: read.topic)
        defer { client.close() }
        try await reportingErrors {
            let ranges = try await read.plan(client: client, defaultStart: .latest, toEnd: exitAtEnd)
            let printer = try output.printer(showsPartition: ranges.count > 1)
            let reading = Task { [read] in
                try await read.read(client: client, ranges: ranges) { batch in
                    batch.forEach(printer.print)
                    printer.flush()
                }
            }
            let signals = onInterrupt { reading.cancel() }
            defer { signals.forEach { $0.cancel() } }
            try await reading.value
            printer.flush()
        }
    }
}
