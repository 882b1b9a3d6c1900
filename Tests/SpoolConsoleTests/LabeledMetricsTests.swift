import CoreMetrics
import Prometheus
@testable import SpoolConsole
import Testing

/// Labeled counters and gauges live in the console's own table, everything else in
/// swift-prometheus; /metrics is both, in the Prometheus text format.
@Suite struct LabeledMetricsTests {
    @Test func labeledSeriesAreKeptHereAndTheRestGoesToPrometheus() {
        let registry = PrometheusCollectorRegistry()
        let metrics = LabeledMetrics(otherMetricsGoTo: PrometheusMetricsFactory(registry: registry))
        let inA = metrics.makeCounter(label: "spool_records_in_total", dimensions: [("topic", "a")])
        let inB = metrics.makeCounter(label: "spool_records_in_total", dimensions: [("topic", "b")])
        let sameA = metrics.makeCounter(label: "spool_records_in_total", dimensions: [("topic", "a")])
        let lag = metrics.makeRecorder(label: "spool_consumer_lag", dimensions: [("group", "g\"1\\"), ("topic", "a"), ("partition", "0")],
                                       aggregate: false)
        let unlabeled = metrics.makeRecorder(label: "spool_parked_fetches", dimensions: [], aggregate: false)
        inA.increment(by: 3)
        sameA.increment(by: 4)
        inB.increment(by: 1)
        lag.record(Int64(42))
        unlabeled.record(Int64(5))

        var labeled: [UInt8] = []
        metrics.emit(into: &labeled)
        #expect(String(decoding: labeled, as: UTF8.self) == """
            # TYPE spool_consumer_lag gauge
            spool_consumer_lag{group="g\\"1\\\\",topic="a",partition="0"} 42.0
            # TYPE spool_records_in_total counter
            spool_records_in_total{topic="a"} 7
            spool_records_in_total{topic="b"} 1

            """)
        var others: [UInt8] = []
        registry.emit(into: &others)
        let text = String(decoding: others, as: UTF8.self)
        #expect(text.contains("spool_parked_fetches 5") && !text.contains("spool_records_in_total"), "\(text)")
    }

    /// Ten thousand partitions' worth of label sets: each is its own series, and making one
    /// again returns the same.
    @Test func manyLabelSetsStayDistinct() {
        let metrics = LabeledMetrics(otherMetricsGoTo: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
        for partition in 0..<10_000 {
            metrics.makeRecorder(label: "spool_log_end_offset", dimensions: [("topic", "t"), ("partition", String(partition))], aggregate: false)
                .record(Int64(partition))
        }
        metrics.makeRecorder(label: "spool_log_end_offset", dimensions: [("topic", "t"), ("partition", "7")], aggregate: false).record(Int64(70))
        var text: [UInt8] = []
        metrics.emit(into: &text)
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 10_001)
        #expect(lines.contains("spool_log_end_offset{topic=\"t\",partition=\"7\"} 70.0"))
        #expect(lines.contains("spool_log_end_offset{topic=\"t\",partition=\"9999\"} 9999.0"))
    }
}
