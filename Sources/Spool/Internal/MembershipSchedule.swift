/// When a ``Consumer`` talks to its group's coordinator, and how it recovers when a request
/// fails: decisions only, so they can be tested without a broker; the consumer's membership
/// task makes the requests and sleeps until ``next(now:)`` says.
///
/// A heartbeat goes every third of the session timeout, at once after a revocation (it carries
/// the release) or after a commit refused for a stale generation (it refreshes the assignment);
/// automatic commits go every `autoCommitInterval`; a retriable failure waits with the shared
/// ``Backoff``, and past the session timeout without contact the partitions count as lost.
struct MembershipSchedule {
    /// What to do now.
    enum Step: Equatable {
        case join
        case heartbeat
        case commit
        /// Nothing is due before this instant.
        case wait(until: ContinuousClock.Instant)
    }

    /// What to do after a failed request.
    enum Recovery: Equatable {
        /// The consumer is closing.
        case stop
        /// Ask ``next(now:)`` again at once (a join or a heartbeat is due now).
        case continueNow
        /// Fail the consumer with the error.
        case fail
        /// Wait, then ask ``next(now:)`` again; when `sessionExpired`, drop the partitions first.
        case retry(after: Duration, sessionExpired: Bool)
    }

    let sessionTimeout: Duration
    /// Nil without automatic commits.
    let autoCommitInterval: Duration?
    private var mustJoin = true
    private var heartbeatNow = false
    private var backoff = Backoff()
    private var lastContact: ContinuousClock.Instant
    private var nextHeartbeat: ContinuousClock.Instant
    private var nextCommit: ContinuousClock.Instant?

    var heartbeatInterval: Duration { .milliseconds(max(sessionTimeout.wholeMilliseconds / 3, 10)) }

    init(sessionTimeout: Duration, autoCommitInterval: Duration?, now: ContinuousClock.Instant) {
        self.sessionTimeout = sessionTimeout
        self.autoCommitInterval = autoCommitInterval
        lastContact = now
        nextHeartbeat = now
        nextCommit = autoCommitInterval.map { now + $0 }
    }

    /// The next step: a join until one worked, then heartbeats and commits when due.
    mutating func next(now: ContinuousClock.Instant) -> Step {
        if mustJoin { return .join }
        if heartbeatNow || now >= nextHeartbeat {
            heartbeatNow = false
            return .heartbeat
        }
        if let commitAt = nextCommit, let interval = autoCommitInterval {
            if now >= commitAt {
                nextCommit = now + interval
                return .commit
            }
            return .wait(until: min(nextHeartbeat, commitAt))
        }
        return .wait(until: nextHeartbeat)
    }

    /// A join or heartbeat was answered: the session is alive until a third of its timeout.
    mutating func contacted(now: ContinuousClock.Instant) {
        mustJoin = false
        lastContact = now
        nextHeartbeat = now + heartbeatInterval
        backoff.reset()
    }

    /// A revocation was made: send the release (a heartbeat) at once.
    mutating func released() {
        heartbeatNow = true
    }

    /// A request failed with `error`.
    mutating func failed(_ error: SpoolError, now: ContinuousClock.Instant) -> Recovery {
        switch error.code {
        case .cancelled, .clientClosed:
            return .stop
        case .unknownMember:
            mustJoin = true
            return .continueNow
        case .staleGeneration:
            heartbeatNow = true  // a commit raced a rebalance: refresh the assignment at once
            return .continueNow
        default:
            guard error.isRetriable else { return .fail }
            return .retry(after: backoff.next(), sessionExpired: now - lastContact > sessionTimeout)
        }
    }
}
