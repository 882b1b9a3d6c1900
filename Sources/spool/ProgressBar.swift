import BenchmarkSupport

/// A one-line progress bar on standard error: percent, bar, records, records/s and time left.
/// Redrawn at most ten times a second.
final class ProgressBar {
    private let total: Int64
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private var lastDrawn: ContinuousClock.Instant?
    private var done: Int64 = 0

    init(total: Int64) {
        self.total = total
        started = clock.now
    }

    /// Records `done` records so far and redraws if the last draw is 100 ms old.
    func update(done: Int64) {
        self.done = done
        if let lastDrawn, clock.now - lastDrawn < .milliseconds(100) { return }
        draw()
    }

    /// Draws the final state and ends the line.
    func finish() {
        draw()
        Terminal.writeError("\n")
    }

    private func draw() {
        lastDrawn = clock.now
        let seconds = Swift.max((clock.now - started).seconds, 0.001)
        let perSecond = Double(done) / seconds
        let fraction = total > 0 ? Swift.min(1, Double(done) / Double(total)) : 1
        let width = 30
        let filled = Int((fraction * Double(width)).rounded(.down))
        let left = perSecond > 0 ? Int((Double(total - done) / perSecond).rounded(.up)) : 0
        let eta = done >= total ? "done" : "ETA \(left / 60):\(String(left % 60).leftPadded(to: 2))"
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        Terminal.writeError("\r\u{1B}[K\(Int(fraction * 100))% [\(bar)] \(done)/\(total) records, \(Int(perSecond)) records/s, \(eta)")
    }
}
