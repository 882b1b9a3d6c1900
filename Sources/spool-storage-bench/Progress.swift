import Foundation

/// Progress lines on stderr, each prefixed with the time since the benchmark started, so stdout
/// carries only the results.
struct Progress: Sendable {
    private let clock = Stopwatch()

    /// Seconds since the benchmark started.
    var elapsedSeconds: Double { clock.seconds }

    /// Writes one line.
    func say(_ message: String) {
        FileHandle.standardError.write(Data("[\(String(format: "%6.1f", clock.seconds)) s] \(message)\n".utf8))
    }

    /// Runs `body`, writing `status()` every `interval` until it returns.
    func reporting<Result>(every interval: Duration = .seconds(2), _ status: @escaping @Sendable () -> String,
                           while body: () async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while true {
                    try await Task.sleep(for: interval)
                    say(status())
                }
            }
            defer { group.cancelAll() }
            return try await body()
        }
    }
}
