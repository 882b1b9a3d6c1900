import ArgumentParser
import Foundation
import Spool

/// `spool groups`: list, describe and reset consumer groups.
struct Groups: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List consumer groups, describe their members and lag, reset their offsets.",
        subcommands: [List.self, Describe.self, Reset.self]
    )

    /// `spool groups list`: every group with its state and member count.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List consumer groups: name, state, members (tab-separated).",
            discussion: """
                Lists the groups the broker knows: those with members and those with committed offsets.

                Example:
                  spool groups list
                """
        )

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                for group in try await client.groups() {
                    print("\(group.name)\t\(group.state)\t\(group.memberCount)")
                }
            }
        }
    }

    /// `spool groups describe`: members, assignment and per-partition lag.
    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a group's state, members and, per partition, committed offset, log end, lag and owner.",
            discussion: """
                Output: a line `group <name> <state> generation <n> members <count>`; one line \
                per live member: `member`, its id, its partitions (topic/partition, comma-separated); \
                then one tab-separated line per partition: topic, partition, committed offset (- \
                when none), log end offset, lag, owning member (- when unassigned).

                Example:
                  spool groups describe audit
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The group.")
        var group: String

        func run() async throws {
            let client = try await connection.connect()
            defer { client.close() }
            try await reportingErrors {
                let description = try await client.describeGroup(group)
                guard description.members.count > 0 || !description.partitions.isEmpty else {
                    throw SpoolError(.invalidArgument, "group '\(group)' has no members and no committed offsets")
                }
                var owners: [TopicPartition: String] = [:]
                for member in description.members { for partition in member.partitions { owners[partition] = member.memberID } }
                print("group \(description.group) \(description.state) generation \(description.generation) members \(description.members.count)")
                for member in description.members {
                    print("member\t\(member.memberID)\t\(member.partitions.sorted().map(\.description).joined(separator: ","))")
                }
                for progress in description.partitions.sorted(by: { $0.partition < $1.partition }) {
                    let committed = progress.committedOffset < 0 ? "-" : String(progress.committedOffset)
                    print("\(progress.partition.topic)\t\(progress.partition.partition)\t\(committed)\t\(progress.logEndOffset)\t\(progress.lag)\t\(owners[progress.partition] ?? "-")")
                }
            }
        }
    }

    /// `spool groups reset`: move a group's committed offsets.
    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Plan or apply new committed offsets for a group on one topic.",
            discussion: """
                Prints the plan, one tab-separated line per partition: topic, partition, current \
                committed offset (- when none), new offset. Nothing changes unless --execute is \
                given (--dry-run is the default). The new offsets are clamped to what the log \
                holds (earliest … latest).

                A group with live members is refused (exit 1): its members would overwrite the \
                new offsets. Stop them first; `spool groups describe` shows who they are.

                Examples:
                  spool groups reset audit --topic orders --to-earliest
                  spool groups reset audit --topic orders --to-time 2026-11-21T10:00:00Z --execute
                  spool groups reset audit --topic orders --shift-by -100 --partition 0 --execute
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: "The group.")
        var group: String

        @Option(help: "The topic whose offsets move.")
        var topic: String

        @Option(help: "Move only this partition (default: all of the topic's partitions).")
        var partition: Int32?

        @Flag(help: "To the first record still stored.")
        var toEarliest = false

        @Flag(help: "To the end of the log (skip everything stored).")
        var toLatest = false

        @Option(help: ArgumentHelp("To this offset.", valueName: "offset"))
        var toOffset: Int64?

        @Option(help: ArgumentHelp("To the first record at or after this time (ISO 8601, or an age like 1h).", valueName: "time"))
        var toTime: TimeArgument?

        @Option(parsing: .unconditional, help: ArgumentHelp("By this many records from the committed offset (negative: back, e.g. --shift-by -100).", valueName: "N"))
        var shiftBy: Int64?

        @Flag(help: "Only print the plan (the default).")
        var dryRun = false

        @Flag(help: "Commit the new offsets.")
        var execute = false

        func validate() throws {
            let targets = [toEarliest, toLatest, toOffset != nil, toTime != nil, shiftBy != nil].filter { $0 }.count
            if targets != 1 { throw ValidationError("choose one target: --to-earliest, --to-latest, --to-offset N, --to-time T or --shift-by N") }
            if dryRun && execute { throw ValidationError("use either --dry-run or --execute, not both") }
            if let toOffset, toOffset < 0 { throw ValidationError("--to-offset must be 0 or more") }
        }

        func run() async throws {
            let client = try await connection.connect(for: topic)
            defer { client.close() }
            try await reportingErrors {
                let plan = try await client.planOffsetReset(group: group, topic: topic, partition: partition, to: target)
                for step in plan {
                    print("\(topic)\t\(step.partition)\t\(step.committedOffset < 0 ? "-" : String(step.committedOffset))\t\(step.newOffset)")
                }
                guard execute else {
                    Terminal.writeError("dry run: nothing changed; add --execute to commit these offsets\n")
                    return
                }
                try await client.applyOffsetReset(group: group, plan)
                Terminal.writeError("committed \(plan.count) offset\(plan.count == 1 ? "" : "s") for group \(group)\n")
            }
        }

        /// The target the flags name.
        private var target: OffsetResetTarget {
            if toEarliest { return .earliest }
            if toLatest { return .latest }
            if let toOffset { return .offset(toOffset) }
            if let toTime { return .timestamp(toTime.milliseconds) }
            return .shift(shiftBy ?? 0)
        }
    }
}
