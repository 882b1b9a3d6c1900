/// The wait before retrying after a retriable failure: `initial` after the first failure in a
/// row, doubling with each further one up to `maximum`, and back to `initial` after a success.
/// The one backoff of the SDK's retry loops (fetching, group membership, a producer's metadata).
struct Backoff {
    let initial: Duration
    let maximum: Duration
    /// The wait the next failure gets.
    private(set) var current: Duration

    /// Default: 50 ms, doubling up to 2 s.
    init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(2)) {
        self.initial = initial
        self.maximum = maximum
        current = initial
    }

    /// The wait for this failure; the next one waits twice as long (up to ``maximum``).
    mutating func next() -> Duration {
        defer { current = min(current * 2, maximum) }
        return current
    }

    /// After a success: the next failure waits ``initial`` again.
    mutating func reset() {
        current = initial
    }
}
