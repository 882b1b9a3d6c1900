import BenchmarkSupport
import Foundation
import Histogram
import Spool
import Synchronization

/// One run of the latency section.
struct LatencyRun: Sendable {
    /// Send time to receive time, in microseconds.
    var latency: LatencyFigures
    /// The records measured, the payload bytes, and the time the sender took to send them
    /// (so `recordsPerSecond` is the achieved rate).
    var sending: Throughput
    /// How late the sender was against its schedule (wall-clock pacing), 99th percentile, µs.
    var senderLateP99: Double
}

extension BrokerBench {
    /// End-to-end latency at a steady rate: one producer with linger 0 enqueues `count` records,
    /// paced by the clock at `rate` per second, whose values start with their send time
    /// (monotonic nanoseconds, 8 bytes little-endian) padded to `size`; a reader on a client of
    /// its own (one long-polling stream per partition) records `receive time - send time` in an
    /// HdrHistogram. Before the clock starts, one priming record per partition travels end to
    /// end, so every reader is waiting in a parked fetch when the first measured record is sent.
    func latency(count: Int, rate: Int, batchBytes: Int) async throws -> LatencyRun {
        let topic = try await createTopic(suffix: "-latency")
        let readerClient = try await connection.connect()
        defer { readerClient.close() }
        let producerClient = try await connection.connect()
        defer { producerClient.close() }
        let producer = try Producer(client: producerClient, configuration: ProducerConfiguration(linger: .zero, batchBytes: batchBytes),
                                    logger: logger)
        let recorder = LatencyRecorder(expected: count, partitions: Int(partitions))
        let padding = randomBytes(size)

        let run = try await withThrowingTaskGroup(of: Void.self) { group in
            defer { group.cancelAll() }
            for partition in 0..<partitions {
                group.addTask {
                    await recorder.read(readerClient.records(from: topic, partition: partition, startingAt: .offset(0)), partition: partition)
                }
            }
            // Priming: offset 0 of every partition, acknowledged and seen by its reader.
            for partition in 0..<partitions {
                try await producer.send(to: topic, partition: partition, value: padding)
            }
            try await recorder.primed.wait()

            // Pacing: record i is due at start + i / rate. The sender sleeps until a record is
            // due (the sleep overshoots by some tens of µs; the next sleep absorbs it) and sends
            // at once when behind. The value carries the actual send time.
            let interval = 1e9 / Double(rate)
            var late = nanosecondHistogram()
            let start = monotonicNanoseconds()
            let clock = ContinuousClock()
            let clockStart = clock.now
            var value = padding  // at least 8 bytes: the option check requires it
            for index in 0..<count {
                let offset = UInt64(Double(index) * interval)
                var now = monotonicNanoseconds()
                if now < start + offset {
                    try await Task.sleep(until: clockStart + .nanoseconds(Int64(offset)), tolerance: .zero, clock: clock)
                    now = monotonicNanoseconds()
                }
                late.record(now - min(now, start + offset))
                stamp(&value, with: now)
                try await producer.enqueue(to: topic, value: value)
            }
            let sendSeconds = Double(monotonicNanoseconds() - start) / 1e9
            try await producer.flush()
            try await producer.close()
            // Every record is acknowledged; the readers get the last ones within a fetch round trip.
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                recorder.fail(BenchFailure("latency: readers got \(recorder.receivedCount) of \(count) acknowledged records within 30 s"))
            }
            try await recorder.done.wait()
            return LatencyRun(latency: recorder.figures(), sending: Throughput(bytes: count * size, records: count, seconds: sendSeconds),
                              senderLateP99: Double(late.valueAtPercentile(99)) / 1000)
        }
        return run
    }
}

/// The readers' shared state: the histogram, the count of measured records, and the gates that
/// say "every reader saw its priming record" and "every measured record arrived".
private final class LatencyRecorder: Sendable {
    let primed = Gate()
    let done = Gate()
    private let expected: Int
    private let partitions: Int
    private let state = Mutex<(histogram: Histogram<UInt64>, received: Int, primedPartitions: Int)>(
        (nanosecondHistogram(), 0, 0)
    )

    init(expected: Int, partitions: Int) {
        self.expected = expected
        self.partitions = partitions
    }

    var receivedCount: Int { state.withLock { $0.received } }

    func figures() -> LatencyFigures { state.withLock { LatencyFigures(nanoseconds: $0.histogram) } }

    func fail(_ failure: BenchFailure) {
        primed.open(.failure(failure))
        done.open(.failure(failure))
    }

    /// Reads one partition until cancelled: offset 0 is the priming record; every later record
    /// carries its send time.
    func read(_ records: RecordSequence, partition: Int32) async {
        var iterator = records.makeAsyncIterator()
        do {
            while let record = try await iterator.next() {
                let now = monotonicNanoseconds()
                if record.offset == 0 {
                    let all = state.withLock { state in
                        state.primedPartitions += 1
                        return state.primedPartitions == partitions
                    }
                    if all { primed.open() }
                    continue
                }
                guard record.value.count >= 8 else {
                    return fail(BenchFailure("latency: record \(record.partition)/\(record.offset) has \(record.value.count) bytes, not a send time"))
                }
                let sent = record.value.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
                let finished = state.withLock { state in
                    state.histogram.record(now - min(now, sent))
                    state.received += 1
                    return state.received == expected
                }
                if finished { done.open() }
            }
        } catch is CancellationError {
            return
        } catch {
            fail(BenchFailure("latency: reading partition \(partition) failed: \(error)"))
        }
    }
}

extension BrokerBench {
    /// Durable request/response: one producer with linger 0 sends `count` records of `size`
    /// bytes one at a time, each awaiting its acknowledgement (on disk under `fsync: always`)
    /// before the next is sent, as a saga step publishing its one event does. Records each
    /// send → acknowledgement time in an HdrHistogram; the rate is `count` over the whole time.
    func requestResponse(count: Int) async throws -> LatencyRun {
        let topic = try await createTopic(suffix: "-request")
        let client = try await connection.connect()
        defer { client.close() }
        let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .zero), logger: logger)
        let value = randomBytes(size)
        try await producer.send(to: topic, value: value)  // the metadata and the connection are ready before the clock starts
        var histogram = nanosecondHistogram()
        let start = monotonicNanoseconds()
        for _ in 0..<count {
            let sent = monotonicNanoseconds()
            try await producer.send(to: topic, value: value)
            histogram.record(monotonicNanoseconds() - sent)
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        try await producer.close()
        return LatencyRun(latency: LatencyFigures(nanoseconds: histogram), sending: Throughput(bytes: count * size, records: count, seconds: seconds),
                          senderLateP99: 0)
    }
}
