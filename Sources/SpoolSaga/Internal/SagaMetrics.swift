import Metrics
import Spool
import Synchronization

/// A participant's metrics, recorded through swift-metrics (the service bootstraps the backend,
/// before it creates its participants: handles made earlier record nowhere). Names and labels
/// are those of docs/http-api.md, "Saga kit"; `group` is the participant's name (its consumer
/// group). Handles are made once per topic and kept, so an event costs a dictionary lookup and
/// the backend's increment.
final class SagaMetrics: Sendable {
    /// The handles of a topic the participant consumes.
    struct Consumed: Sendable {
        /// `spool_saga_events_handled_total{topic,group}`: events handled (their transaction committed), once each.
        let handled: Counter
        /// `spool_saga_retries_total{topic,group}`: handler attempts that failed and will be retried.
        let retries: Counter
        /// `spool_saga_dead_letters_total{topic,group}`: records moved to `<topic>.dlq`.
        let deadLetters: Counter
        /// `spool_saga_handler_duration_seconds{topic,group}`: one handler run, its inbox and outbox writes included.
        let duration: Timer
    }

    /// The handles of a topic the participant publishes to from its outbox.
    struct Published: Sendable {
        /// `spool_saga_events_emitted_total{topic}`: events published.
        let emitted: Counter
        /// `spool_saga_compensations_total{topic}`: those of them with role ``EventRole/compensation``.
        let compensations: Counter
    }

    private let group: String
    /// `spool_saga_outbox_depth{group}`: outbox rows not yet published.
    private let outboxDepth: Gauge
    /// The depth last recorded, adjusted as rows are added and published.
    private let unpublished = Atomic(0)
    private let consumedTopics = Mutex<[String: Consumed]>([:])
    private let publishedTopics = Mutex<[String: Published]>([:])

    /// The metrics of the participant (consumer group) `group`.
    init(group: String) {
        self.group = group
        outboxDepth = Gauge(label: "spool_saga_outbox_depth", dimensions: [("group", group)])
    }

    /// The handles of consumed topic `topic`, made at its first use.
    func consumed(_ topic: String) -> Consumed {
        Self.cached(consumedTopics, topic) {
            let dimensions = [("topic", topic), ("group", group)]
            return Consumed(handled: Counter(label: "spool_saga_events_handled_total", dimensions: dimensions),
                            retries: Counter(label: "spool_saga_retries_total", dimensions: dimensions),
                            deadLetters: Counter(label: "spool_saga_dead_letters_total", dimensions: dimensions),
                            duration: Timer(label: "spool_saga_handler_duration_seconds", dimensions: dimensions))
        }
    }

    private func publishedTo(_ topic: String) -> Published {
        Self.cached(publishedTopics, topic) {
            Published(emitted: Counter(label: "spool_saga_events_emitted_total", dimensions: [("topic", topic)]),
                      compensations: Counter(label: "spool_saga_compensations_total", dimensions: [("topic", topic)]))
        }
    }

    private static func cached<Handles: Sendable>(_ cache: borrowing Mutex<[String: Handles]>, _ topic: String, make: () -> Handles) -> Handles {
        cache.withLock { cache in
            if let handles = cache[topic] { return handles }
            let handles = make()
            cache[topic] = handles
            return handles
        }
    }

    /// `rows` were published (the broker acknowledged them): counts them, and the compensations
    /// among them, per topic, and takes them off the outbox depth.
    func published(_ rows: [SagaStore.PendingRow]) {
        for row in rows {
            let handles = publishedTo(row.topic)
            handles.emitted.increment()
            if row.record.headers.text(of: EventHeaderName.role) == EventRole.compensation.rawValue { handles.compensations.increment() }
        }
        recordDepth(unpublished.subtract(rows.count, ordering: .relaxed).newValue)
    }

    /// A committed transaction added `count` rows to the outbox.
    func addedToOutbox(_ count: Int) {
        recordDepth(unpublished.add(count, ordering: .relaxed).newValue)
    }

    /// The relay counted `count` unsent rows: the depth is exact again (until then, rows added
    /// by a transaction that committed just before the count may be counted twice).
    func outboxCounted(_ count: Int) {
        unpublished.store(count, ordering: .relaxed)
        recordDepth(count)
    }

    private func recordDepth(_ depth: Int) {
        outboxDepth.record(Swift.max(depth, 0))
    }
}
