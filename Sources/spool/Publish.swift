import ArgumentParser
import Foundation
import Spool

/// `spool publish`: one record from the argument, or one per line of standard input.
struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish records to a topic.",
        discussion: """
            With VALUE, publishes one record. Without it, publishes one record per line of \
            standard input, in batches, in order. Each batch is acknowledged before the next \
            is sent, so when the command exits 0 every record is stored (on disk under fsync: always).

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

    /// Records per batch when reading standard input.
    private static let batchRecords = 1_000
    /// Bytes per batch when reading standard input (stays below the default 1 MiB limit).
    private static let batchBytes = 512 * 1024

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
            var batch: [OutgoingRecord] = []
            var batchBytes = 0
            var published = 0
            var results: [PublishResult] = []
            func flush() async throws {
                guard !batch.isEmpty else { return }
                results.append(try await client.publish(to: topic, partition: partition, records: batch))
                published += batch.count
                batch = []
                batchBytes = 0
            }
            while let line = readLine(strippingNewline: true) {
                batch.append(OutgoingRecord(key: keyBytes, value: Array(line.utf8), headers: parsedHeaders))
                batchBytes += line.utf8.count + 16
                if batch.count >= Self.batchRecords || batchBytes >= Self.batchBytes { try await flush() }
            }
            try await flush()
            let partitions = Set(results.map(\.partition)).sorted().map(String.init).joined(separator: ",")
            FileHandle.standardError.write(Data("published \(published) records to \(topic) (partition \(partitions.isEmpty ? "-" : partitions))\n".utf8))
        }
    }
}
