import CoreMetrics
@testable import SpoolConsole
import Testing

/// The console's running totals: rates per interval from the counters the broker increments,
/// sync mean and max per interval, gauges as last set, and everything else ignored.
@Suite struct ConsoleMetricsTests {
    @Test func samplesAreRatesOverTheIntervalAndSyncStatisticsStartAfreshEachTime() {
        let metrics = ConsoleMetrics()
        let recordsIn = metrics.makeCounter(label: "spool_records_in_total", dimensions: [("topic", "a")])
        let otherTopic = metrics.makeCounter(label: "spool_records_in_total", dimensions: [("topic", "b")])
        let bytesOut = metrics.makeCounter(label: "spool_bytes_out_total", dimensions: [("topic", "a")])
        let fsync = metrics.makeTimer(label: "spool_fsync_duration_seconds", dimensions: [])
        let clients = metrics.makeRecorder(label: "spool_connected_clients", dimensions: [], aggregate: false)
        let ignored = metrics.makeCounter(label: "spool_request_errors_total", dimensions: [])

        metrics.sample(now: 1_000)
        #expect(metrics.samples.isEmpty, "the first call only sets the baseline")
        recordsIn.increment(by: 3_000)
        otherTopic.increment(by: 2_000)
        bytesOut.increment(by: 10_000)
        fsync.recordNanoseconds(2_000_000)
        fsync.recordNanoseconds(4_000_000)
        clients.record(Int64(7))
        ignored.increment(by: 99)
        metrics.sample(now: 6_000)
        let first = try! #require(metrics.samples.last)
        #expect(first.recordsInPerSecond == 1_000, "5,000 records over 5 s, summed over topics")
        #expect(first.bytesOutPerSecond == 2_000)
        #expect(first.syncsPerSecond == 0.4)
        #expect(abs(first.syncMeanSeconds - 0.003) < 1e-9 && abs(first.syncMaxSeconds - 0.004) < 1e-9)
        #expect(metrics.gauge("spool_connected_clients") == 7)

        fsync.recordNanoseconds(1_000_000)
        metrics.sample(now: 11_000)
        let second = try! #require(metrics.samples.last)
        #expect(second.recordsInPerSecond == 0, "no new records")
        #expect(abs(second.syncMaxSeconds - 0.001) < 1e-9, "the max starts again each interval")
        #expect(metrics.samples.count == 2)
    }

    @Test func keepsFifteenMinutesOfSamples() {
        let metrics = ConsoleMetrics()
        for second in 0...(ConsoleMetrics.keptSamples + 20) { metrics.sample(now: Int64(second) * 5_000) }
        #expect(metrics.samples.count == ConsoleMetrics.keptSamples)
        let oldest = metrics.samples.first?.timestamp ?? -1
        #expect(oldest == Int64(21 * 5_000), "the oldest go first: 201 calls make 200 samples, the first 20 dropped")
    }

    /// The status page describes only the topics whose partitions the broker's gauges say refuse
    /// writes; before any gauge is set it cannot tell, and says so with nil.
    @Test func topicsRefusingWritesFollowThePartitionGauges() {
        let metrics = ConsoleMetrics()
        #expect(metrics.topicsRefusingWrites == nil)
        func partition(_ topic: String, _ number: Int) -> any RecorderHandler {
            metrics.makeRecorder(label: "spool_partition_writes_refused", dimensions: [("topic", topic), ("partition", String(number))], aggregate: false)
        }
        let (a0, a1, b0) = (partition("a", 0), partition("a", 1), partition("b", 0))
        for gauge in [a0, a1, b0] { gauge.record(Int64(0)) }
        #expect(metrics.topicsRefusingWrites == [])
        a0.record(Int64(1))
        a1.record(Int64(1))
        b0.record(Int64(1))
        #expect(metrics.topicsRefusingWrites == ["a", "b"])
        a0.record(Int64(0))
        b0.record(Int64(0))
        #expect(metrics.topicsRefusingWrites == ["a"], "a still has partition 1 refusing")
        a1.record(Int64(0))
        #expect(metrics.topicsRefusingWrites == [])
    }
}
