import CoreMetrics
import Synchronization

/// The counters and gauges that carry labels (one series per topic, partition or group), kept
/// for the Prometheus text format in a table where a new label set costs O(1); every other
/// metric (unlabeled ones, histograms, timers) goes to the factory it wraps.
///
/// Why: swift-prometheus 2.4 copies all of a metric's label sets to add one, so registering the
/// gauges of 10,000 partitions took most of a minute (quadratic); with this table a broker with
/// that many partitions opens in seconds.
///
/// Thread-safe: handlers update atomics; making a handler and ``emit(into:)`` take a lock.
public final class LabeledMetrics: MetricsFactory, Sendable {
    private let others: any MetricsFactory & Sendable
    private let families = Mutex<[String: Family]>([:])

    private struct Family {
        var type: String
        /// By rendered label set (`{topic="a",partition="0"}`).
        var series: [String: any Series] = [:]
    }

    /// A table that sends every metric without labels, and every histogram or timer, to `others`.
    public init(otherMetricsGoTo others: any MetricsFactory & Sendable) {
        self.others = others
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        guard !dimensions.isEmpty else { return others.makeCounter(label: label, dimensions: dimensions) }
        return series(label, dimensions, type: "counter") { CounterSeries() }
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard !dimensions.isEmpty, !aggregate else { return others.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate) }
        return series(label, dimensions, type: "gauge") { GaugeSeries() }
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        others.makeTimer(label: label, dimensions: dimensions)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if !(handler is any Series) { others.destroyCounter(handler) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        if !(handler is any Series) { others.destroyRecorder(handler) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        others.destroyTimer(handler)
    }

    /// Appends every series in the Prometheus text format (version 0.0.4): per metric, sorted by
    /// name, a `# TYPE` line and one line per label set, sorted.
    public func emit(into buffer: inout [UInt8]) {
        let snapshot = families.withLock { $0 }
        for (name, family) in snapshot.sorted(by: { $0.key < $1.key }) {
            buffer.append(contentsOf: "# TYPE \(name) \(family.type)\n".utf8)
            for (labels, series) in family.series.sorted(by: { $0.key < $1.key }) {
                buffer.append(contentsOf: "\(name)\(labels) \(series.text)\n".utf8)
            }
        }
    }

    /// The series of `name` with `dimensions`, made by `make` the first time.
    private func series<Handler: Series>(_ name: String, _ dimensions: [(String, String)], type: String,
                                         _ make: () -> Handler) -> Handler {
        let labels = "{" + dimensions.map { "\($0.0)=\"\(Self.escaped($0.1))\"" }.joined(separator: ",") + "}"
        return families.withLock { families in
            if let found = families[name]?.series[labels] as? Handler { return found }
            let made = make()
            families[name, default: Family(type: type)].series[labels] = made
            return made
        }
    }

    /// A label value as the text format writes it: backslash, double quote and newline escaped.
    static func escaped(_ value: String) -> String {
        var text = ""
        for character in value {
            switch character {
            case "\\": text += "\\\\"
            case "\"": text += "\\\""
            case "\n": text += "\\n"
            default: text.append(character)
            }
        }
        return text
    }
}

/// One labeled series' current value, as the text format writes it.
private protocol Series: AnyObject, Sendable {
    var text: String { get }
}

private final class CounterSeries: CounterHandler, Series {
    private let value = Atomic<Int64>(0)
    var text: String { String(value.load(ordering: .relaxed)) }
    func increment(by amount: Int64) { value.wrappingAdd(amount, ordering: .relaxed) }
    func reset() { value.store(0, ordering: .relaxed) }
}

private final class GaugeSeries: RecorderHandler, Series {
    private let bits = Atomic<UInt64>(0)
    var text: String { "\(Double(bitPattern: bits.load(ordering: .relaxed)))" }
    func record(_ value: Int64) { record(Double(value)) }
    func record(_ value: Double) { bits.store(value.bitPattern, ordering: .relaxed) }
}
