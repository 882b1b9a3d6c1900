import Spool

/// How a failing handler is retried before its record goes to the dead-letter topic.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included (1 = no retry).
    public var maxAttempts: Int
    /// The wait before the second attempt.
    public var initialBackoff: Duration
    /// The longest wait between attempts; each wait doubles up to it.
    public var maxBackoff: Duration

    /// Defaults: 5 attempts, waits of 100 ms, 200 ms, 400 ms, 800 ms (at most 5 s).
    public init(maxAttempts: Int = 5, initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(5)) {
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// The wait after failed attempt number `attempt` (1-based).
    public func backoff(after attempt: Int) -> Duration {
        var wait = initialBackoff
        for _ in 1..<Swift.max(1, attempt) where wait < maxBackoff { wait *= 2 }
        return Swift.min(wait, maxBackoff)
    }
}

/// Settings of a ``SagaParticipant``.
public struct SagaConfiguration: Sendable {
    /// Retries of a failing handler before dead-lettering.
    public var retry: RetryPolicy
    /// How often the relay looks for outbox rows and due timeouts when nothing woke it
    /// (it is woken at once after every local transaction that emitted events). Also the
    /// precision of timeouts.
    public var pollInterval: Duration
    /// How long published outbox rows are kept (marked sent) before they are deleted.
    public var sentRetention: Duration
    /// How long the inbox remembers a handled event id. An event delivered again after that is
    /// handled again: keep it above the longest a record can come back (the topics' retention,
    /// and that of their dead-letter topics if you replay them).
    public var inboxRetention: Duration
    /// The consumer-group settings (the group is the participant's name).
    public var consumer: ConsumerConfiguration
    /// The producer settings of the relay and the dead-letter writer.
    public var producer: ProducerConfiguration
    /// Records already fetched that are handled together, in one local transaction (one
    /// SQLite commit), each in its own savepoint: a handler that fails undoes only its own
    /// record's effects, and that record is retried alone. 1 = a transaction per record.
    public var maxRecordsPerTransaction: Int

    /// Defaults: ``RetryPolicy/init(maxAttempts:initialBackoff:maxBackoff:)``, a 200 ms poll,
    /// sent rows kept 10 minutes, handled event ids kept 30 days, a producer without linger (the
    /// relay batches by itself), up to 100 records per transaction.
    public init(retry: RetryPolicy = RetryPolicy(), pollInterval: Duration = .milliseconds(200), sentRetention: Duration = .seconds(600),
                inboxRetention: Duration = .seconds(30 * 24 * 3600), consumer: ConsumerConfiguration = ConsumerConfiguration(),
                producer: ProducerConfiguration = ProducerConfiguration(linger: .zero), maxRecordsPerTransaction: Int = 100) {
        self.retry = retry
        self.pollInterval = pollInterval
        self.sentRetention = sentRetention
        self.inboxRetention = inboxRetention
        self.consumer = consumer
        self.producer = producer
        self.maxRecordsPerTransaction = maxRecordsPerTransaction
    }
}

/// Thrown by a handler for a failure that no retry can fix (a malformed order, say): the record
/// goes to the dead-letter topic at once, with this message as its reason.
public struct PermanentFailure: Error, Sendable, CustomStringConvertible {
    /// Why the event cannot be handled.
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}
