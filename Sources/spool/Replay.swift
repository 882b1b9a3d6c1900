import ArgumentParser
import Foundation
import Logging
import Spool

/// `spool replay`: print a closed range of a topic, or copy it to another topic.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a range of a topic's records, or copy them to another topic, then exit.",
        discussion: """
            Reads from the start (--from beginning|OFFSET|TIME|AGE, or --from-beginning, --offset \
            N, --last N, --since AGE, --from-time TIME) to --until OFFSET|TIME (or --until-offset \
            N, --until-time TIME), --count N, or the end of the log as it was when the command \
            started. Without --partition, every partition.

            With --to, copies each record's key, value, headers and timestamp to the other topic \
            through the SDK's idempotent, batching Producer (the partition follows the key there), \
            and leaves out the headers whose names start with spool-dlq-: the saga kit adds them \
            when it dead-letters a record to <topic>.dlq, so `spool replay orders.dlq --to \
            orders` puts the original records back. The command exits 0 once every copy is \
            acknowledged. --rate paces the copy (or the printing). Ctrl-C stops a copy: the records \
            taken so far are still delivered, and the command exits 1 saying how many of how \
            many were copied (a print just stops, exit 0).

            On a terminal, a progress bar with records/s and the time left is drawn on standard \
            error (while copying, or while printing to a pipe); nothing when standard error is \
            not a terminal.

            Examples:
              spool replay orders --from beginning
              spool replay orders --from 100 --until 199 --format json
              spool replay orders --from 2026-11-21T10:00:00Z --until 2026-11-21T11:00:00Z
              spool replay orders.dlq --from beginning --to orders
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

    func validate() throws {
        guard read.hasStart else {
            throw ValidationError("replay needs a start: --from beginning|OFFSET|TIME|AGE (or --from-beginning, --offset N, --last N, --since AGE, --from-time TIME)")
        }
        if let to { try reportingNameErrors(to) }
    }

    func run() async throws {
        let client = try await connection.connect(for: read.topic)
        defer { client.close() }
        try await reportingErrors {
            let ranges = try await read.plan(client: client, defaultStart: .earliest, toEnd: true)
            let printer = try output.printer(showsPartition: ranges.count > 1)
            let transfer = Task { [read, to, rate] in
                try await Self.transfer(client: client, read: read, ranges: ranges, to: to, rate: rate, printer: printer)
            }
            // Ctrl-C stops the read; what was copied so far is still delivered and counted.
            let signals = onInterrupt { transfer.cancel() }
            defer { signals.forEach { $0.cancel() } }
            try await transfer.value
        }
    }

    /// Prints the ranges, or copies them to `to`, with a progress bar on a terminal. Cancelling
    /// the task stops the read: a print ends there; a copy delivers what it took so far and then
    /// throws, saying how many of how many records were copied.
    private static func transfer(client: SpoolClient, read: ReadOptions, ranges: [PartitionRange], to: String?, rate: RateArgument?,
                                 printer: RecordPrinter) async throws {
        let total = Swift.min(ranges.reduce(0) { $0 + ($1.count ?? 0) }, Int64(read.count ?? Int.max))
        let showsProgress = Terminal.isTerminal(STDERR_FILENO) && (to != nil || !Terminal.isTerminal(STDOUT_FILENO))
        let progress = showsProgress ? ProgressBar(total: total) : nil
        let pacer = rate.map { Pacer(perSecond: $0.perSecond) }
        var done: Int64 = 0
        guard let to else {
            try await read.read(client: client, ranges: ranges) { batch in
                for record in batch where !Task.isCancelled {
                    await pacer?.wait()
                    printer.print(record)
                    done += 1
                }
                printer.flush()
                progress?.update(done: done)
            }
            progress?.finish()
            return
        }
        let producer = try Producer(client: client, logger: WarningLogHandler.logger)
        try await read.read(client: client, ranges: ranges) { batch in
            for record in batch where !Task.isCancelled {
                await pacer?.wait()
                let copy = OutgoingRecord(replaying: record)
                try await producer.enqueue(to: to, key: copy.key, value: copy.value, headers: copy.headers, timestamp: copy.timestamp)
                done += 1
            }
            progress?.update(done: done)
        }
        // Outside this task's cancellation, so an interrupted copy still delivers what it took.
        try await Task { try await producer.close() }.value
        progress?.finish()
        guard !Task.isCancelled else {
            throw SpoolError(.cancelled, "interrupted: copied \(done) of \(total) records from \(read.topic) to \(to); the rest were not copied")
        }
        Terminal.writeError("copied \(done) record\(done == 1 ? "" : "s") from \(read.topic) to \(to)\n")
    }
}

/// Throws the SDK's topic-name error as a usage error.
func reportingNameErrors(_ topic: String) throws {
    do throws(SpoolError) {
        try SpoolClient.checkTopicName(topic)
    } catch {
        throw ValidationError(error.message)
    }
}
