import ArgumentParser

/// `--rate`: records per second, written `500` or `500/s`.
struct RateArgument: ExpressibleByArgument, Sendable {
    let perSecond: Double

    init?(argument: String) {
        let number = argument.hasSuffix("/s") ? String(argument.dropLast(2)) : argument
        guard let value = Double(number), value > 0, value.isFinite else { return nil }
        perSecond = value
    }
}

/// Spaces calls of ``wait()`` `1/perSecond` apart on average, from the first call on (no burst
/// after a pause beyond what the schedule allows).
final class Pacer {
    private let interval: Duration
    private let clock = ContinuousClock()
    private var next: ContinuousClock.Instant?

    init(perSecond: Double) { interval = .seconds(1 / perSecond) }

    /// Returns when the next call is due.
    func wait() async {
        let due = next ?? clock.now
        if due > clock.now { try? await clock.sleep(until: due) }
        next = due + interval
    }
}

