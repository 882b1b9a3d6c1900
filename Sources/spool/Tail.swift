import ArgumentParser
import Foundation
import Logging
import Spool

/// How records are printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// `offset<TAB>key<TAB>value`, one line per record.
    case text
    /// One JSON object per line, lossless (non-UTF-8 bytes as base64).
    case json
}

/// Options shared by `tail` and `replay`: where to read and how to print.
struct ReadOptions: ParsableArguments {
    @Argument(help: "Topic to read.")
    var topic: String

    @Option(help: "Partition to read.")
    var partition: Int32 = 0

    @Flag(help: "Start at the first record still stored.")
    var fromBeginning = false

    @Option(help: "Start at this offset.")
    var offset: Int64?

    @Option(help: "Stop after printing the record at this offset (inclusive).")
    var untilOffset: Int64?

    @Option(help: "Output format: text (offset, key, value separated by tabs) or json (one object per line, binary as base64).")
    var format: OutputFormat = .text

    func validate() throws {
        if fromBeginning && offset != nil { throw ValidationError("use either --from-beginning or --offset, not both") }
        if let offset, offset < 0 { throw ValidationError("--offset must be 0 or more") }
        if let untilOffset, let offset, untilOffset < offset { throw ValidationError("--until-offset is before --offset") }
    }

    /// Prints records from the chosen start; stops at `untilOffset`, or at the end of the log
    /// as it was when the command started if `exitAtEnd`.
    func printRecords(connection: ConnectionOptions, defaultStart: StartPosition, exitAtEnd: Bool) async throws {
        let client = try await connection.connect(for: topic)
        defer { client.close() }
        let printer = RecordPrinter(format: format)
        try await reportingErrors {
            let first: Int64
            if let offset {
                first = offset
            } else {
                let spec: OffsetSpec = fromBeginning || defaultStart == .earliest ? .earliest : .latest
                first = try await client.offset(of: topic, partition: partition, spec)
            }
            var last = untilOffset
            if exitAtEnd {
                let end = try await client.offset(of: topic, partition: partition, .latest) - 1
                last = min(last ?? end, end)
            }
            if let last, first > last { return }
            var records = client.records(from: topic, partition: partition, startingAt: .offset(first)).makeAsyncIterator()
            while let record = try await records.next() {
                if let last, record.offset > last { break }
                printer.print(record)
                if records.bufferedCount == 0 { printer.flush() }
                if let last, record.offset >= last { break }
            }
            printer.flush()
        }
    }
}

/// `spool tail`: follow a topic.
struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a topic's records as they arrive.",
        discussion: """
            Starts at the end of the log unless --from-beginning or --offset says otherwise, and \
            follows new records (long poll, no busy polling) until Ctrl-C.

            With --group, reads every partition as a member of that consumer group: the group's \
            partitions are shared with its other members, text lines start with partition/offset, \
            a partition starts at the group's committed offset (or the first record when there is \
            none), and what was printed is committed every second and at Ctrl-C (SIGINT or \
            SIGTERM), so the next member resumes after it.

            Examples:
              spool tail orders
              spool tail orders --from-beginning --exit-at-end
              spool tail orders --offset 1000 --format json
              spool tail orders --group audit
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var read: ReadOptions

    @Flag(help: "Exit after the last record that existed when the command started.")
    var exitAtEnd = false

    @Option(help: ArgumentHelp("Consume as a member of this consumer group (all partitions, committed offsets).", valueName: "group"))
    var group: String?

    func validate() throws {
        guard group != nil else { return }
        if exitAtEnd || read.fromBeginning || read.offset != nil || read.untilOffset != nil || read.partition != 0 {
            throw ValidationError("--group reads from the group's committed offsets: it cannot be combined with --partition, --from-beginning, --offset, --until-offset or --exit-at-end")
        }
    }

    func run() async throws {
        guard let group else {
            return try await read.printRecords(connection: connection, defaultStart: .latest, exitAtEnd: exitAtEnd)
        }
        let client = try await connection.connect(for: read.topic)
        defer { client.close() }
        let consumer = try await reportingErrors {
            try Consumer(client: client, group: group, topics: [read.topic],
                         logger: Logger(label: "spool", factory: { _ in SwiftLogNoOpLogHandler() }))
        }
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { Task { await consumer.close() } }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        let printer = RecordPrinter(format: read.format, showsPartition: true)
        try await reportingErrors {
            var records = consumer.makeAsyncIterator()
            while let record = try await records.next() {
                printer.print(record)
                printer.flush()  // a record is committed once processed: it must have left the process by then
            }
        }
    }
}

/// `spool replay`: print a closed range of a topic and exit.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a range of a topic's records, then exit.",
        discussion: """
            Prints from --from-beginning or --offset N up to --until-offset M (inclusive), or to \
            the end of the log as it was when the command started.

            Examples:
              spool replay orders --from-beginning
              spool replay orders --offset 100 --until-offset 199 --format json
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var read: ReadOptions

    func validate() throws {
        guard read.fromBeginning || read.offset != nil else {
            throw ValidationError("replay needs a start: --from-beginning or --offset N")
        }
    }

    func run() async throws {
        try await read.printRecords(connection: connection, defaultStart: .earliest, exitAtEnd: true)
    }
}
