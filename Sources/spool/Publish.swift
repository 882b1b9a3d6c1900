import ArgumentParser
import Foundation
import Logging
import Spool

/// `spool publish`: one record from the argument, or one per line of standard input.
struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish records to a topic.",
        discussion: """
            With VALUE, publishes one record. Without it, publishes one record per line of \
            standard input through the SDK's idempotent Producer: lines are batched (up to \
            256 KiB, 5 ms), several batches travel at once, a lost connection is retried without \
            storing a line twice, and lines with one key keep their order. The command exits 0 \
            only once every line is acknowledged (on disk under fsync: always).

            Examples:
              spool publish orders '{"id":1}'
              spool publish orders --key order-1 --header source=cli '{"id":1}'
              seq 1 100000 | spool publish numbers
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Topic to publish to.")
    var topic: String

    @Argument(help: "The record value. Omit to read one record per line from standard input.")
    var value: String?

    @Option(help: "Record key (records with one key keep their order in one partition).")
    var key: String?

    @Option(name: .customLong("header"), help: ArgumentHelp("A header name=value; repeat for more.", valueName: "name=value"))
    var headers: [String] = []

    @Option(help: "Partition to publish to (default: chosen from the key, or round-robin).")
    var partition: Int32?

    func validate() throws {
        for header in headers where !header.contains("=") {
            throw ValidationError("--header '\(header)' is not name=value")
        }
    }

    func run() async throws {
        let parsedHeaders = headers.map { header in
            let name = header.prefix { $0 != "=" }
            return RecordHeader(name: String(name), string: String(header.dropFirst(name.count + 1)))
        }
        let keyBytes = key.map { Array($0.utf8) }
        let client = try await connection.connect(for: topic)
        defer { client.close() }
        try await reportingErrors {
            if let value {
                let result = try await client.publish(to: topic, partition: partition, key: keyBytes, value: Array(value.utf8), headers: parsedHeaders)
                print("\(topic)/\(result.partition) offset \(result.baseOffset) (\(result.durability))")
                return
            }
            let producer = try Producer(client: client, logger: Logger(label: "spool", factory: { _ in SwiftLogNoOpLogHandler() }))
            var published = 0
            while let line = readLine(strippingNewline: true) {
                try await producer.enqueue(to: topic, partition: partition, key: keyBytes, value: Array(line.utf8), headers: parsedHeaders)
                published += 1
            }
            try await producer.close()
            let partitions = partition.map { "partition \($0)" } ?? (keyBytes == nil ? "spread over the partitions" : "the key's partition")
            FileHandle.standardError.write(Data("published \(published) records to \(topic) (\(partitions))\n".utf8))
        }
    }
}
