import Foundation
import Glibc

// What the benchmark executables (`spool bench`, `spool-storage-bench`) share: clocks, the
// machine's load, progress lines, random payloads, and number formatting for their tables.

/// Elapsed time on the monotonic clock since the stopwatch was made.
public struct Stopwatch: Sendable {
    private let start = ContinuousClock.now

    /// Starts the stopwatch.
    public init() {}

    /// Seconds since the stopwatch was made.
    public var seconds: Double { (ContinuousClock.now - start).seconds }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    public var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}

/// CPU time this process has used so far, all threads, user and system, in seconds.
public func processCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// The resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`, a line that
/// reads `VmRSS:     12345 kB`), or nil if it cannot be read (the process is gone).
public func residentBytes(ofProcess pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kibibytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { return nil }
    return kibibytes << 10
}

/// The load averages over 1, 5 and 15 minutes from `/proc/loadavg`, or `unknown`: a busy
/// machine makes every figure smaller.
public func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// Progress lines on stderr, each prefixed with the time since the benchmark started, so stdout
/// carries only the results.
public struct BenchmarkProgress: Sendable {
    private let clock = Stopwatch()

    /// Starts the clock of the progress lines.
    public init() {}

    /// Seconds since the benchmark started.
    public var elapsedSeconds: Double { clock.seconds }

    /// Writes one line.
    public func say(_ message: String) {
        FileHandle.standardError.write(Data("[\(String(format: "%6.1f", clock.seconds)) s] \(message)\n".utf8))
    }

    /// Runs `body`, writing `status()` every `interval` until it returns.
    public func reporting<Result>(every interval: Duration = .seconds(2), _ status: @escaping @Sendable () -> String,
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

/// `count` random bytes (incompressible, like most real payloads after compression), from a
/// SplitMix64 generator with a random seed: fast, and no system call per byte.
public func randomBytes(_ count: Int) -> [UInt8] {
    var state = UInt64.random(in: .min ... .max)
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { buffer in
        var position = 0
        while position < buffer.count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var mixed = state
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            mixed ^= mixed >> 31
            withUnsafeBytes(of: mixed) { word in
                for byte in word where position < buffer.count {
                    buffer[position] = byte
                    position += 1
                }
            }
        }
    }
    return bytes
}

/// `value` with `digits` decimals.
public func decimal(_ value: Double, digits: Int) -> String {
    String(format: "%.\(digits)f", value)
}

/// `0.834` as `83%`.
public func percent(_ ratio: Double) -> String {
    "\(Int((ratio * 100).rounded()))%"
}

/// `1234567` as `1,234,567`.
public func grouped(_ value: Int) -> String {
    var digits = String(value.magnitude)
    var groups: [Substring] = []
    while digits.count > 3 {
        groups.insert(Substring(digits.suffix(3)), at: 0)
        digits.removeLast(3)
    }
    groups.insert(Substring(digits), at: 0)
    return (value < 0 ? "-" : "") + groups.joined(separator: ",")
}

/// `text` as one shell word: unchanged when it is plain, single-quoted otherwise.
public func shellQuoted(_ text: String) -> String {
    let plain = !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
    return plain ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
public func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
