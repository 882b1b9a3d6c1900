import CoreMetrics
import Foundation
import Synchronization

/// The few broker metrics the console charts and shows, kept as running totals: a swift-metrics
/// backend that `spoold` multiplexes with Prometheus, so the console reads the very values
/// `/metrics` exports and never counts anything a second way. Every other metric is ignored.
public final class ConsoleMetrics: MetricsFactory, Sendable {
    /// Metric names this backend tracks.
    enum Name {
        static let recordsIn = "spool_records_in_total"
        static let bytesIn = "spool_bytes_in_total"
        static let recordsOut = "spool_records_out_total"
        static let bytesOut = "spool_bytes_out_total"
        static let fsync = "spool_fsync_duration_seconds"
        static let connectedClients = "spool_connected_clients"
        static let diskTotal = "spool_disk_total_bytes"
        static let diskFree = "spool_disk_free_bytes"
        static let writesRefused = "spool_partition_writes_refused"
    }

    /// Totals since start (counters summed over their labels), the syncs' count, summed and
    /// largest duration since the last sample, and the gauges' last values.
    struct Totals: Sendable {
        var counters: [String: Int64] = [:]
        var syncCount: Int64 = 0
        var syncNanoseconds: Int64 = 0
        var syncMaxNanoseconds: Int64 = 0
        var gauges: [String: Double] = [:]
        /// The topics with a partition whose `spool_partition_writes_refused` is 1 now, with
        /// those partitions.
        var refusingWrites: [String: Set<String>] = [:]
        /// Whether the broker set that gauge yet.
        var knowsRefusingWrites = false
    }

    /// The totals, shared by the backend and its handlers.
    final class SharedTotals: Sendable {
        private let state = Mutex(Totals())
        func withLock<T>(_ body: (inout Totals) -> T) -> T { state.withLock { body(&$0) } }
    }

    /// One point of the console's overview charts: rates over the interval before `timestamp`.
    public struct Sample: Encodable, Sendable {
        public var timestamp: Int64
        public var recordsInPerSecond: Double
        public var bytesInPerSecond: Double
        public var recordsOutPerSecond: Double
        public var bytesOutPerSecond: Double
        public var syncsPerSecond: Double
        public var syncMeanSeconds: Double
        public var syncMaxSeconds: Double
    }

    /// Seconds between two samples.
    public static let sampleIntervalSeconds = 5
    /// Samples kept: 15 minutes.
    static let keptSamples = 180

    private let totals = SharedTotals()
    private let history = Mutex<(previous: Totals?, previousTime: Int64, samples: [Sample])>((nil, 0, []))

    /// An empty backend.
    public init() {}

    /// The last value of a tracked gauge, nil before the broker set it.
    public func gauge(_ name: String) -> Double? { totals.withLock { $0.gauges[name] } }

    /// The topics with a partition refusing writes now, from the broker's gauges; nil before the
    /// broker set them (metrics off, or no partition yet).
    public var topicsRefusingWrites: Set<String>? {
        totals.withLock { $0.knowsRefusingWrites ? Set($0.refusingWrites.keys) : nil }
    }

    /// The kept samples, oldest first.
    public var samples: [Sample] { history.withLock { $0.samples } }

    /// Takes a sample at `now` (ms since the epoch): the rates since the previous call.
    public func sample(now: Int64) {
        let current = totals.withLock { totals in
            defer { totals.syncCount = 0; totals.syncNanoseconds = 0; totals.syncMaxNanoseconds = 0 }
            return totals
        }
        history.withLock { history in
            defer { history.previous = current; history.previousTime = now }
            guard let previous = history.previous, now > history.previousTime else { return }
            let seconds = Double(now - history.previousTime) / 1000
            func rate(_ name: String) -> Double { Double((current.counters[name] ?? 0) - (previous.counters[name] ?? 0)) / seconds }
            history.samples.append(Sample(
                timestamp: now, recordsInPerSecond: rate(Name.recordsIn), bytesInPerSecond: rate(Name.bytesIn),
                recordsOutPerSecond: rate(Name.recordsOut), bytesOutPerSecond: rate(Name.bytesOut),
                syncsPerSecond: Double(current.syncCount) / seconds,
                syncMeanSeconds: current.syncCount == 0 ? 0 : Double(current.syncNanoseconds) / Double(current.syncCount) / 1e9,
                syncMaxSeconds: Double(current.syncMaxNanoseconds) / 1e9))
            if history.samples.count > Self.keptSamples { history.samples.removeFirst(history.samples.count - Self.keptSamples) }
        }
    }

    // MARK: MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        [Name.recordsIn, Name.bytesIn, Name.recordsOut, Name.bytesOut].contains(label) ? TotalCounter(name: label, totals: totals) : Ignored()
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if label == Name.writesRefused, let topic = dimensions.first(where: { $0.0 == "topic" })?.1,
           let partition = dimensions.first(where: { $0.0 == "partition" })?.1 {
            return RefusedWrites(topic: topic, partition: partition, totals: totals)
        }
        return [Name.connectedClients, Name.diskTotal, Name.diskFree].contains(label) && !aggregate ? LastValue(name: label, totals: totals) : Ignored()
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        label == Name.fsync ? SyncTimer(totals: totals) : Ignored()
    }

    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}

    private final class TotalCounter: CounterHandler, Sendable {
        let name: String
        let totals: SharedTotals
        init(name: String, totals: SharedTotals) {
            self.name = name
            self.totals = totals
        }
        func increment(by amount: Int64) { totals.withLock { $0.counters[name, default: 0] += amount } }
        func reset() {}
    }

    private final class LastValue: RecorderHandler, Sendable {
        let name: String
        let totals: SharedTotals
        init(name: String, totals: SharedTotals) {
            self.name = name
            self.totals = totals
        }
        func record(_ value: Int64) { record(Double(value)) }
        func record(_ value: Double) { totals.withLock { $0.gauges[name] = value } }
    }

    /// One partition's `spool_partition_writes_refused`: keeps the set of refusing partitions.
    private final class RefusedWrites: RecorderHandler, Sendable {
        let topic: String
        let partition: String
        let totals: SharedTotals
        init(topic: String, partition: String, totals: SharedTotals) {
            (self.topic, self.partition, self.totals) = (topic, partition, totals)
        }
        func record(_ value: Int64) { record(Double(value)) }
        func record(_ value: Double) {
            totals.withLock { totals in
                totals.knowsRefusingWrites = true
                if value > 0 {
                    totals.refusingWrites[topic, default: []].insert(partition)
                } else if totals.refusingWrites[topic]?.remove(partition) != nil, totals.refusingWrites[topic]?.isEmpty == true {
                    totals.refusingWrites[topic] = nil
                }
            }
        }
    }

    private final class SyncTimer: TimerHandler, Sendable {
        let totals: SharedTotals
        init(totals: SharedTotals) { self.totals = totals }
        func recordNanoseconds(_ duration: Int64) {
            totals.withLock {
                $0.syncCount += 1
                $0.syncNanoseconds += duration
                $0.syncMaxNanoseconds = max($0.syncMaxNanoseconds, duration)
            }
        }
    }

    private final class Ignored: CounterHandler, RecorderHandler, TimerHandler, Sendable {
        func increment(by amount: Int64) {}
        func reset() {}
        func record(_ value: Int64) {}
        func record(_ value: Double) {}
        func recordNanoseconds(_ duration: Int64) {}
    }
}
