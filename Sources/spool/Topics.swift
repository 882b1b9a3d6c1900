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
                partitioner), so choose the count before publishing keyed records. --config sets \
                a topic's own value of a broker setting: fsync, fsync.interval.ms, segment.bytes, \
                segment.ms, index.interval.bytes, retention.ms, retention.bytes (-1: unlimited); \
                see broker-config/spoold.yaml.

                Examples:
                  spool topics create orders --partitions 6
                  spool topics create audit --config retention.ms=-1 --config fsync=always
                  spool topics create metrics --config retention.bytes=1073741824 --config fsync=interval
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "Name of the new topic (letters, digits, '.', '_', '-'; at most 249).")
        var topic: String

        @Option(help: "Number of partitions (1 to 10000).")
        var partitions: Int32 = 1

        @Option(name: .customLong("config"), help: ArgumentHelp("A topic setting, key=value (repeatable).", valueName: "key=value"))
        var settings: [String] = []

        func validate() throws {
            guard (1...10_000).contains(partitions) else { throw ValidationError("--partitions must be 1 to 10000") }
            _ = try parsedSettings()
        }

        /// `--config` values as a map; a value without `=` or a repeated key is a usage error.
        private func parsedSettings() throws -> [String: String] {
            var parsed: [String: String] = [:]
            for setting in settings {
                guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                    throw ValidationError("--config \(setting): expected key=value, e.g. retention.ms=86400000")
                }
                let key = String(setting[..<equals])
                guard parsed.updateValue(String(setting[setting.index(after: equals)...]), forKey: key) == nil else {
                    throw ValidationError("--config \(key) is given twice")
                }
            }
            return parsed
        }

        func run() async throws {
            let client = try await connection.connect(for: topic)
            defer { client.close() }
            try await reportingErrors {
                let settings = try parsedSettings()
                try await client.createTopic(topic, partitions: partitions, settings: settings)
                let described = settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                print("created \(topic) with \(partitions) partition\(partitions == 1 ? "" : "s")" + (described.isEmpty ? "" : " (\(described))"))
            }
        }
    }
}
