import SpoolWire

/// Where ``SpoolClient/planOffsetReset(group:topic:partition:to:)`` moves a group's committed offsets.
public enum OffsetResetTarget: Sendable, Hashable {
    /// The first record still stored.
    case earliest
    /// The end of the log (skip everything stored).
    case latest
    /// This offset.
    case offset(Int64)
    /// The first record at or after this time (ms since the epoch).
    case timestamp(Int64)
    /// This many records from the committed offset (negative: back); from the earliest offset when nothing is committed.
    case shift(Int64)
}

/// One partition of an offset-reset plan.
public struct OffsetResetStep: Sendable, Hashable, Encodable {
    /// Topic name.
    public var topic: String
    /// Partition number.
    public var partition: Int32
    /// The group's committed offset now; -1 when it has none.
    public var committedOffset: Int64
    /// The offset the reset commits, clamped to what the log holds (earliest … latest).
    public var newOffset: Int64
}

extension SpoolClient {
    /// The records of one partition from `start` to the end it had when called, only those with
    /// `key` when given (plain fetches, no waiting).
    public func records(of topic: String, partition: Int32, from start: OffsetSpec, key: [UInt8]? = nil) async throws(SpoolError) -> [SpoolRecord] {
        try await records(of: topic, partition: partition, fromOffset: try await offset(of: topic, partition: partition, start), key: key)
    }

    /// The records of one partition from offset `start` to the end it had when called, only those
    /// with `key` when given (plain fetches, no waiting).
    public func records(of topic: String, partition: Int32, fromOffset start: Int64, key: [UInt8]? = nil) async throws(SpoolError) -> [SpoolRecord] {
        var next = start
        let end = try await offset(of: topic, partition: partition, .latest)
        var records: [SpoolRecord] = []
        while next < end {
            let fetched = try await fetch(from: topic, partition: partition, offset: next)
            guard fetched.nextOffset > next else { break }
            records += fetched.records.filter { $0.offset < end && (key == nil || $0.key == key) }
            next = fetched.nextOffset
        }
        return records
    }

    /// Plans moving `group`'s committed offsets on `topic` (one `partition`, or all) to `target`;
    /// changes nothing. Throws ``SpoolError/Code/groupNotEmpty`` while the group has live members
    /// (they would overwrite the new offsets), ``SpoolError/Code/unknownTopic`` or
    /// ``SpoolError/Code/unknownPartition``. `spool groups reset` and the console both plan this way.
    public func planOffsetReset(group: String, topic: String, partition: Int32? = nil,
                                to target: OffsetResetTarget) async throws(SpoolError) -> [OffsetResetStep] {
        let description = try await describeGroup(group)
        guard description.members.isEmpty else {
            throw SpoolError(.groupNotEmpty, "group '\(group)' has \(description.members.count) live member\(description.members.count == 1 ? "" : "s"); stop them before resetting its offsets")
        }
        guard let info = try await topics([topic]).first(where: { $0.name == topic }) else {
            throw SpoolError(.unknownTopic, "topic '\(topic)' does not exist")
        }
        let partitions = info.partitions.filter { partition == nil || $0.partition == partition }
        guard !partitions.isEmpty else {
            throw SpoolError(.unknownPartition, "topic '\(topic)' has no partition \(partition ?? -1) (it has \(info.partitions.count))")
        }
        let current = try await committedOffsets(group, partitions: partitions.map { TopicPartition(topic: topic, partition: $0.partition) })
        var plan: [OffsetResetStep] = []
        for info in partitions {
            let committed = current.first { $0.partition == TopicPartition(topic: topic, partition: info.partition) }?.offset ?? -1
            let wanted: Int64 = switch target {
            case .earliest: info.earliestOffset
            case .latest: info.latestOffset
            case .offset(let offset): offset
            case .timestamp(let time): try await offset(of: topic, partition: info.partition, .timestamp(time))
            case .shift(let count): (committed < 0 ? info.earliestOffset : committed) + count
            }
            plan.append(OffsetResetStep(topic: topic, partition: info.partition, committedOffset: committed,
                                        newOffset: min(max(wanted, info.earliestOffset), info.latestOffset)))
        }
        return plan
    }

    /// Commits the offsets of a plan from ``planOffsetReset(group:topic:partition:to:)``.
    public func applyOffsetReset(group: String, _ plan: [OffsetResetStep]) async throws(SpoolError) {
        try await commitOffsets(group, plan.map { CommittedOffset(partition: TopicPartition(topic: $0.topic, partition: $0.partition), offset: $0.newOffset) })
    }
}

extension OutgoingRecord {
    /// A copy of `record` to publish again (key, value, timestamp and headers) without the
    /// dead-letter headers the saga kit added: what `spool replay X.dlq --to X` and the console's
    /// dead-letter replay send.
    public init(replaying record: SpoolRecord) {
        self.init(key: record.key, value: record.value,
                  headers: record.headers.filter { !$0.name.hasPrefix(DeadLetterHeaderName.prefix) }, timestamp: record.timestamp)
    }
}
