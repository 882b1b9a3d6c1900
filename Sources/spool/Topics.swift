import ArgumentParser
import Foundation
import Spool

/// `spool topics`: list and create topics.
struct Topics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and create topics.",
        subcommands: [List.self, Create.self]
    )

    /// `spool topics list`: every topic with its partitions and offset ranges.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List topics: one line per partition with its earliest and latest offset.",
            discussion: """
                Output columns (tab-separated): topic, partition, earliest offset, latest offset \
                (the offset the next record gets).

                Example:
                  spool topics list
                """
        )

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                for topic in try await client.topics() {
                    for partition in topic.partitions {
                        print("\(topic.name)\t\(partition.partition)\t\(partition.earliestOffset)\t\(partition.latestOffset)")
                    }
                }
            }
        }
    }

    /// `spool topics create`: a topic with a chosen partition count.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a topic.",
            discussion: """
                Records with a key go to partition murmur2(key) mod partitions (Kafka's default \
                partitioner), so choose the count before publishing keyed records.

                Example:
                  spool topics create orders --partitions 6
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "Name of the new topic (letters, digits, '.', '_', '-'; at most 249).")
        var topic: String

        @Option(help: "Number of partitions (1 to 10000).")
        var partitions: Int32 = 1

        func validate() throws {
            guard (1...10_000).contains(partitions) else { throw ValidationError("--partitions must be 1 to 10000") }
        }

        func run() async throws {
            let client = try await connection.connect(for: topic)
            defer { client.close() }
            try await reportingErrors {
                try await client.createTopic(topic, partitions: partitions)
                print("created \(topic) with \(partitions) partition\(partitions == 1 ? "" : "s")")
            }
        }
    }
}
