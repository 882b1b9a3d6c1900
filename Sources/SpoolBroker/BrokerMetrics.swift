import Dispatch
import Glibc
import Metrics
import SpoolStorage
import SpoolWire

/// The broker's metrics, recorded through swift-metrics (the executable picks the backend;
/// without one they cost a no-op call). Handles are made once per operation, topic, partition,
/// group or limit and kept, so the hot paths only increment. Names and meanings are listed in
/// docs/http-api.md. Not thread-safe: owned by the broker's thread.
final class BrokerMetrics {
    /// The handles of one partition.
    struct Partition {
        let recordsIn: Counter
        let bytesIn: Counter
        let recordsOut: Counter
        let bytesOut: Counter
        let sizeBytes: Gauge
        let segments: Gauge
        let endOffset: Gauge
        let writesRefused: Gauge

        init(_ key: PartitionKey) {
            let topic = [("topic", key.topic.rawValue)]
            let partition = topic + [("partition", String(key.partition))]
            recordsIn = Counter(label: "spool_records_in_total", dimensions: topic)
            bytesIn = Counter(label: "spool_bytes_in_total", dimensions: topic)
            recordsOut = Counter(label: "spool_records_out_total", dimensions: topic)
            bytesOut = Counter(label: "spool_bytes_out_total", dimensions: topic)
            sizeBytes = Gauge(label: "spool_log_size_bytes", dimensions: partition)
            segments = Gauge(label: "spool_log_segments", dimensions: partition)
            endOffset = Gauge(label: "spool_log_end_offset", dimensions: partition)
            writesRefused = Gauge(label: "spool_partition_writes_refused", dimensions: partition)
        }

        /// Removes the partition's series (its topic was deleted).
        func destroy() {
            for gauge in [sizeBytes, segments, endOffset, writesRefused] { gauge.destroy() }
        }
    }

    /// Seconds between two refreshes of the gauges (lag, log sizes, disk, parked fetches).
    static let refreshIntervalMilliseconds: Int64 = 1000

    private var requestTimers: [OpCode: Timer] = [:]
    private var requestErrors: [String: Counter] = [:]
    private var aclRefusals: [AccessOperation: Counter] = [:]
    private var limitRefusals: [String: Counter] = [:]
    private var lag: [String: Gauge] = [:]
    let syncRecords = Recorder(label: "spool_sync_records")
    let parkedFetches = Gauge(label: "spool_parked_fetches")
    let offsetStoreWritesRefused = Gauge(label: "spool_offset_store_writes_refused")
    let diskTotal = Gauge(label: "spool_disk_total_bytes")
    let diskFree = Gauge(label: "spool_disk_free_bytes")
    let openFiles = Gauge(label: "spool_open_files")
    let openFilesLimit = Gauge(label: "spool_open_files_limit")
    let fileOpens = Counter(label: "spool_file_opens_total")
    /// The cache's count of opens at the last refresh (the counter grows by the difference).
    private var fileOpensSeen = 0
    /// Monotonic time of the next gauge refresh.
    var nextRefresh: Int64 = 0

    /// Records that the loop spent `nanoseconds` on a request of `operation`.
    func requestHandled(_ operation: OpCode, nanoseconds: UInt64) {
        Self.cached(&requestTimers, operation) { Timer(label: "spool_request_duration_seconds", dimensions: [("operation", Self.label(operation))]) }
            .recordNanoseconds(Int64(clamping: nanoseconds))
    }

    /// Counts a request of `operation` answered with `code`.
    func requestFailed(_ operation: OpCode, _ code: ErrorCode) {
        Self.cached(&requestErrors, "\(operation)/\(code)") {
            Counter(label: "spool_request_errors_total", dimensions: [("operation", Self.label(operation)), ("code", "\(code)")])
        }.increment()
    }

    /// Counts a request the access rules refused.
    func aclRefused(_ operation: AccessOperation) {
        Self.cached(&aclRefusals, operation) { Counter(label: "spool_acl_refusals_total", dimensions: [("operation", operation.rawValue)]) }.increment()
    }

    /// Counts a request refused by the limit named by its configuration key (`max.batch.bytes`, …).
    func limitRefused(_ limit: String) {
        Self.cached(&limitRefusals, limit) { Counter(label: "spool_limit_refusals_total", dimensions: [("limit", limit)]) }.increment()
    }

    /// Sets every group's lag (`lags`: group → partition → lag); series of groups or partitions
    /// no longer listed are removed.
    func setLag(_ lags: [(group: String, partition: TopicPartition, lag: Int64)]) {
        var seen: Set<String> = []
        for (group, partition, value) in lags {
            let name = "\(group)\u{0}\(partition.topic)\u{0}\(partition.partition)"
            seen.insert(name)
            Self.cached(&lag, name) {
                Gauge(label: "spool_consumer_lag", dimensions: [("group", group), ("topic", partition.topic), ("partition", String(partition.partition))])
            }.record(value)
        }
        for (name, gauge) in lag where !seen.contains(name) {
            gauge.destroy()
            lag[name] = nil
        }
    }

    /// Sets the open-file gauges and counter from the partition logs' file cache.
    func measureOpenFiles(_ cache: OpenFileCache) {
        let statistics = cache.statistics
        openFiles.record(statistics.open)
        openFilesLimit.record(cache.capacity)
        fileOpens.increment(by: statistics.opens - fileOpensSeen)
        fileOpensSeen = statistics.opens
    }

    /// Sets the disk gauges from the filesystem holding `path`.
    func measureDisk(_ path: String) {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return }
        diskTotal.record(Int64(stats.f_blocks) * Int64(stats.f_frsize))
        diskFree.record(Int64(stats.f_bavail) * Int64(stats.f_frsize))
    }

    /// `cache[key]`, made by `make` and kept the first time.
    private static func cached<Key: Hashable, Handle>(_ cache: inout [Key: Handle], _ key: Key, _ make: () -> Handle) -> Handle {
        if let handle = cache[key] { return handle }
        let handle = make()
        cache[key] = handle
        return handle
    }

    /// An operation's label value: its name in snake case (`commit_offsets`).
    static func label(_ operation: OpCode) -> String {
        "\(operation)".replacingOccurrences(of: " ", with: "_")
    }

    /// Monotonic nanoseconds, for request and acknowledgement timing.
    static var nanosecondsNow: UInt64 { DispatchTime.now().uptimeNanoseconds }
}
