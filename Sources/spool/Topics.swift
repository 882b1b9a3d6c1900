import ArgumentParser
import Foundation
import Spool

/// `spool topics`: list, create, describe and delete topics.
struct Topics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, create, describe and delete topics.",
        subcommands: [List.self, Create.self, Describe.self, Delete.self]
    )

    /// `spool topics list`: every topic with its partitions and offset ranges.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List topics: one line per partition with its earliest and latest offset.",
            discussion: """
                Output columns (tab-separated): topic, partition, earliest offset, latest offset \
                (the offset the next record gets). With --long, one line per topic instead: \
                topic, partitions, records stored, bytes on disk, retention.ms, retention.bytes, \
                fsync (-1: unlimited).

                Examples:
                  spool topics list
                  spool topics list --long
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Flag(help: "One line per topic with records, size on disk, retention and fsync policy.")
        var long = false

        func run() async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                for topic in try await client.topics() {
                    guard long else {
                        for partition in topic.partitions {
                            print("\(topic.name)\t\(partition.partition)\t\(partition.earliestOffset)\t\(partition.latestOffset)")
                        }
                        continue
                    }
                    let described = try await client.describeTopic(topic.name)
                    let records = described.partitions.reduce(Int64(0)) { $0 + $1.logEndOffset - $1.logStartOffset }
                    let size = described.partitions.reduce(Int64(0)) { $0 + $1.sizeBytes }
                    let settings = ["retention.ms", "retention.bytes", "fsync"].map { described.settings[$0] ?? "-" }
                    print(([topic.name, "\(described.partitions.count)", "\(records)", "\(size)"] + settings).joined(separator: "\t"))
                }
            }
        }
    }

    /// `spool topics describe`: settings in force and per-partition offsets and size.
    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a topic's settings, and per partition its offsets, size on disk and segments.",
            discussion: """
                Output (tab-separated): a line `topic <name> partitions <n> records <stored> bytes \
                <on disk>`; one line per setting in force: `setting <key> <value> <topic|broker>` \
                (topic: the topic sets it itself; -1: unlimited or never); then one line per \
                partition: `partition <n> <earliest> <latest> <bytes> <segments>`, followed by \
                `refusing writes: <why>` while the partition refuses writes (a full or failing \
                disk; writes resume by themselves once the cause is gone).

                Example:
                  spool topics describe orders
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The topic.")
        var topic: String

        func run() async throws {
            let client = try await connection.connect(for: topic)
            defer { client.close() }
            try await reportingErrors {
                let described = try await client.describeTopic(topic)
                let records = described.partitions.reduce(Int64(0)) { $0 + $1.logEndOffset - $1.logStartOffset }
                let size = described.partitions.reduce(Int64(0)) { $0 + $1.sizeBytes }
                print("topic\t\(described.name)\tpartitions\t\(described.partitions.count)\trecords\t\(records)\tbytes\t\(size)")
                for (key, value) in described.settings.sorted(by: { $0.key < $1.key }) {
                    print("setting\t\(key)\t\(value)\t\(described.topicSettings[key] == nil ? "broker" : "topic")")
                }
                for partition in described.partitions {
                    let refusal = partition.writeError.isEmpty ? "" : "\trefusing writes: \(partition.writeError)"
                    print("partition\t\(partition.partition)\t\(partition.logStartOffset)\t\(partition.logEndOffset)\t\(partition.sizeBytes)\t\(partition.segmentCount)\(refusal)")
                }
            }
        }
    }

    /// `spool topics delete`: a topic and its data.
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a topic and all its records.",
            discussion: """
                Needs --yes: the records are gone for good. Refused (exit 1) while a consumer \
                group with live members consumes the topic; readers waiting on it (spool tail) \
                stop with "topic was deleted". Groups keep their committed offsets on it: if the \
                topic is created again, move them with `spool groups reset`. With ACLs, needs the \
                topic's admin grant (like create).

                Example:
                  spool topics delete scratch --yes
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The topic.")
        var topic: String

        @Flag(help: "Confirm that the topic and its records are to be deleted.")
        var yes = false

        func validate() throws {
            guard yes else { throw ValidationError("deleting '\(topic)' removes all its records for good: add --yes to confirm") }
        }

        func run() async throws {
            let client = try await connection.connect(for: topic)
            defer { client.close() }
            try await reportingErrors {
                let partitions = try await client.deleteTopic(topic)
                print("deleted \(topic) (\(partitions) partition\(partitions == 1 ? "" : "s"))")
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
