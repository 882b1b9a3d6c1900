import ArgumentParser
import Foundation
import Spool

/// Where `tail` and `replay` start and stop, and which partitions they read.
///
/// Without `--partition`, every partition of the topic is read at once and the records are
/// printed as they arrive: each partition's records in offset order, partitions interleaved.
/// Start and stop offsets apply to each partition; `--count` counts records over all of them.
struct ReadOptions: ParsableArguments {
    @Argument(help: "Topic to read.")
    var topic: String

    @Option(help: "Read only this partition (default: all partitions, merged).")
    var partition: Int32?

    @Flag(help: "Start at the first record still stored.")
    var fromBeginning = false

    @Option(help: "Start at this offset (in each partition read).")
    var offset: Int64?

    @Option(help: ArgumentHelp("Start this many records before the end (of each partition read).", valueName: "N"))
    var last: Int64?

    @Option(help: ArgumentHelp("Start at the first record of the last 90s, 10m, 2h, 1d, ….", valueName: "age"))
    var since: AgeArgument?

    @Option(help: ArgumentHelp("Start at the first record at or after this time (ISO 8601, e.g. 2026-11-21T10:00:00Z).", valueName: "time"))
    var fromTime: TimeArgument?

    @Option(help: ArgumentHelp("Start at beginning, end, an offset, a time (ISO 8601) or an age (10m): the other start options in one.",
                               valueName: "position"))
    var from: PositionArgument?

    @Option(help: ArgumentHelp("Stop after this many records (over all partitions read).", valueName: "N"))
    var count: Int?

    @Option(help: "Stop after the record at this offset (inclusive, in each partition read).")
    var untilOffset: Int64?

    @Option(help: ArgumentHelp("Stop before the first record after this time (ISO 8601 or an age like 5m).", valueName: "time"))
    var untilTime: TimeArgument?

    @Option(help: ArgumentHelp("Stop at end (the end when the command started), after an offset, or before the first record after a time.",
                               valueName: "position"))
    var until: PositionArgument?

    func validate() throws {
        let starts = [fromBeginning, offset != nil, last != nil, since != nil, fromTime != nil, from != nil].filter { $0 }.count
        if starts > 1 { throw ValidationError("choose one start: --from-beginning, --offset, --last, --since, --from-time or --from") }
        if until != nil && (untilOffset != nil || untilTime != nil) { throw ValidationError("use either --until or --until-offset / --until-time") }
        if until == .earliest { throw ValidationError("--until beginning would read nothing: use end, an offset or a time") }
        if let offset, offset < 0 { throw ValidationError("--offset must be 0 or more") }
        if let last, last < 0 { throw ValidationError("--last must be 0 or more") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let partition, partition < 0 { throw ValidationError("--partition must be 0 or more") }
        if let untilOffset, let offset, untilOffset < offset { throw ValidationError("--until-offset is before --offset") }
    }

    /// True when a start was given.
    var hasStart: Bool { fromBeginning || offset != nil || last != nil || since != nil || fromTime != nil || from != nil }
    /// True when a stop other than `--exit-at-end` was given.
    var hasStop: Bool { count != nil || untilOffset != nil || untilTime != nil || until != nil }
    /// The last offset to read, from `--until-offset` or `--until N`.
    private var lastOffset: Int64? {
        guard case .offset(let offset) = until else { return untilOffset }
        return offset
    }
    /// The time after which a partition ends, from `--until-time` or `--until TIME`.
    private var lastTime: Int64? {
        guard case .time(let time) = until else { return untilTime?.milliseconds }
        return time
    }

    /// The first offset to read in `partition`: the chosen start, or `defaultStart`.
    func firstOffset(client: SpoolClient, partition: Int32, defaultStart: OffsetSpec) async throws(SpoolError) -> Int64 {
        if let offset { return offset }
        if let last {
            let earliest = try await client.offset(of: topic, partition: partition, .earliest)
            let latest = try await client.offset(of: topic, partition: partition, .latest)
            return Swift.max(earliest, latest - last)
        }
        if let time = since?.milliseconds ?? fromTime?.milliseconds {
            return try await client.offset(of: topic, partition: partition, .timestamp(time))
        }
        switch from {
        case .offset(let offset): return offset
        case .time(let time): return try await client.offset(of: topic, partition: partition, .timestamp(time))
        case .latest: return try await client.offset(of: topic, partition: partition, .latest)
        case .earliest: return try await client.offset(of: topic, partition: partition, .earliest)
        case nil: return try await client.offset(of: topic, partition: partition, fromBeginning ? .earliest : defaultStart)
        }
    }

    /// Each partition to read with its first and last offset (nil: follow), checked against the
    /// broker: an unknown topic or partition is an error. With `toEnd`, `--until end`, or a stop
    /// time that has passed, a partition ends at the last record it held when the command started.
    func plan(client: SpoolClient, defaultStart: OffsetSpec, toEnd: Bool) async throws(SpoolError) -> [PartitionRange] {
        guard let info = try await client.topics([topic]).first(where: { $0.name == topic }) else {
            throw SpoolError(.unknownTopic, "topic '\(topic)' does not exist")
        }
        let partitions = try partition.map { partition throws(SpoolError) in
            guard info.partitions.contains(where: { $0.partition == partition }) else {
                throw SpoolError(.unknownPartition, "topic '\(topic)' has no partition \(partition) (it has \(info.partitions.count))")
            }
            return [partition]
        } ?? info.partitions.map(\.partition)
        let endsNow = toEnd || until == .latest || (lastTime.map { $0 <= EventMetadata.now() } ?? false)
        var ranges: [PartitionRange] = []
        for partition in partitions {
            let first = try await firstOffset(client: client, partition: partition, defaultStart: defaultStart)
            var last = lastOffset
            if endsNow {
                let end = try await client.offset(of: topic, partition: partition, .latest) - 1
                last = Swift.min(last ?? end, end)
            }
            ranges.append(PartitionRange(partition: partition, first: first, last: last))
        }
        return ranges
    }

    /// Reads the planned ranges and hands each record to `body` on the calling task, in batches
    /// as they arrive (flush after each batch). Stops at the end of every range, after `--count`
    /// records, or when the task is cancelled (which ends the read without an error).
    func read(client: SpoolClient, ranges: [PartitionRange], _ body: ([SpoolRecord]) async throws -> Void) async throws {
        var remaining = count ?? Int.max
        let untilTime = lastTime
        let active = ranges.filter { range in range.last.map { range.first <= $0 } ?? true }
        guard !active.isEmpty else { return }
        let (events, continuation) = AsyncThrowingStream.makeStream(of: ReadEvent.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for range in active {
                group.addTask {
                    do {
                        try await Self.readPartition(client: client, topic: topic, range: range, untilTime: untilTime, into: continuation)
                        continuation.yield(.partitionDone)
                    } catch {
                        continuation.finish(throwing: error)
                    }
                }
            }
            defer { group.cancelAll() }
            var open = active.count
            do {
                for try await event in events {
                    guard case .records(var batch) = event else {
                        open -= 1
                        if open == 0 { break }
                        continue
                    }
                    if batch.count > remaining { batch.removeLast(batch.count - remaining) }
                    remaining -= batch.count
                    try await body(batch)
                    if remaining == 0 { break }
                }
            } catch {
                guard !isCancellation(error) else { return }
                throw error
            }
        }
    }

    /// What a partition's reader reports.
    private enum ReadEvent: Sendable {
        case records([SpoolRecord])
        case partitionDone
    }

    /// Reads one range, yielding a batch whenever the client has nothing more buffered.
    private static func readPartition(client: SpoolClient, topic: String, range: PartitionRange, untilTime: Int64?,
                                      into continuation: AsyncThrowingStream<ReadEvent, any Error>.Continuation) async throws {
        var records = client.records(from: topic, partition: range.partition, startingAt: .offset(range.first)).makeAsyncIterator()
        var batch: [SpoolRecord] = []
        while let record = try await records.next() {
            let past = untilTime.map { record.timestamp > $0 } == true || range.last.map { record.offset > $0 } == true
            if !past { batch.append(record) }
            let done = past || range.last == record.offset
            if (done || records.bufferedCount == 0) && !batch.isEmpty {
                continuation.yield(.records(batch))
                batch = []
            }
            if done { return }
        }
    }
}

/// True for the errors a cancelled read ends with.
func isCancellation(_ error: any Error) -> Bool {
    error is CancellationError || (error as? SpoolError)?.code == .cancelled
}

/// One partition's part of a read: from `first` to `last` inclusive, or on and on when `last` is nil.
struct PartitionRange: Sendable {
    /// The partition.
    var partition: Int32
    /// First offset to read.
    var first: Int64
    /// Last offset to read (inclusive); nil to follow.
    var last: Int64?

    /// Records in the range (nil when it has no end).
    var count: Int64? { last.map { Swift.max(0, $0 - first + 1) } }
}

/// `--from` / `--until`: `beginning` (or `earliest`), `end` (or `latest`), an offset, an ISO 8601
/// time or an age (`10m`, counted back from now).
enum PositionArgument: ExpressibleByArgument, Equatable, Sendable {
    /// The first record still stored.
    case earliest
    /// The end of the log when the command starts.
    case latest
    /// An offset (in each partition read).
    case offset(Int64)
    /// Milliseconds since the Unix epoch.
    case time(Int64)

    init?(argument: String) {
        switch argument {
        case "beginning", "earliest": self = .earliest
        case "end", "latest": self = .latest
        default:
            if let offset = Int64(argument) {
                guard offset >= 0 else { return nil }
                self = .offset(offset)
            } else if let time = TimeArgument(argument: argument) {
                self = .time(time.milliseconds)
            } else {
                return nil
            }
        }
    }
}
