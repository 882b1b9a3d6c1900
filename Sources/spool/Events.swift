import ArgumentParser
import Foundation
import Spool

/// `spool events`: one key's records (an aggregate's history), read through the key index.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print one key's records (an aggregate's history) in order, then exit.",
        discussion: """
            Reads every record of KEY in its partition of TOPIC (the partition a keyed publish \
            uses) from --from on, through the broker's key index: the cost grows with the key's \
            records, not with the topic. Ends with a line on standard error giving the key's last \
            offset, the version to pass to `spool publish --key KEY --if-last-offset N` for a \
            conditional append. A key with no record prints nothing and says so.

            Examples:
              spool events orders order-42
              spool events orders order-42 --from 1200 --format json
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "Topic to read.")
    var topic: String

    @Argument(help: "The key whose records are printed.")
    var key: String

    @Option(help: ArgumentHelp("First offset to print.", valueName: "offset"))
    var from: Int64 = 0

    func validate() throws {
        try reportingNameErrors(topic)
        guard from >= 0 else { throw ValidationError("--from must be an offset, 0 or more") }
    }

    func run() async throws {
        let client = try await connection.connect(for: topic)
        defer { client.close() }
        try await reportingErrors {
            let history = try await client.records(ofKey: Array(key.utf8), in: topic, from: from)
            let printer = try output.printer(showsPartition: false)
            for record in history.records { printer.print(record) }
            printer.flush()
            if let last = history.lastOffset {
                Terminal.writeError("\(history.records.count) record\(history.records.count == 1 ? "" : "s") of key \(key); its last offset is \(last)\n")
            } else {
                Terminal.writeError("key \(key) has no record in \(topic)\n")
            }
        }
    }
}
