@testable import Spool
import Testing

/// The SDK's one retry backoff: doubling from the initial wait up to the maximum, and back after a success.
@Suite struct BackoffTests {
    @Test func doublesUpToTheMaximumAndStartsOverAfterASuccess() {
        var backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(300))
        #expect((0..<5).map { _ in backoff.next() } == [.milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(300)])
        backoff.reset()
        #expect(backoff.next() == .milliseconds(50))
    }
}
