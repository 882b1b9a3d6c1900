import Foundation

/// A child process whose output goes to a log file (appended across restarts), that can be
/// killed with any signal and started again with the same command.
public final class ManagedProcess: @unchecked Sendable {
    /// A short name for messages ("broker", "stock", …).
    public let name: String
    /// The executable and its arguments.
    public let executable: String
    public let arguments: [String]
    /// The working directory (defaults such as `./stock.sqlite` are relative to it).
    public let directory: String
    /// Where standard output and standard error go.
    public let logPath: String
    private let lock = NSLock()
    private var process: Process?
    /// How many times the process was started.
    public private(set) var starts = 0

    public init(name: String, executable: String, arguments: [String], directory: String, logPath: String) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.directory = directory
        self.logPath = logPath
    }

    /// Whether the process runs now.
    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// Starts the process; throws if the executable is missing or cannot start.
    public func start() throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw HarnessError("\(name): no executable at \(executable) (build it first)")
        }
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        guard let log = FileHandle(forWritingAtPath: logPath) else { throw HarnessError("\(name): cannot open the log \(logPath)") }
        log.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        lock.withLock {
            self.process = process
            starts += 1
        }
    }

    /// Sends `signal` and waits (up to `timeout`) for the process to end; true if it ended.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(20)) async -> Bool {
        guard let process = lock.withLock({ self.process }), process.isRunning else { return true }
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return !process.isRunning
    }

    /// Kills the process at once (SIGKILL: no cleanup, like a crash) and waits for it to end.
    public func crash() async {
        await stop(signal: SIGKILL)
    }

    /// The exit status of the last run, or nil while it runs (or never ran).
    public var exitStatus: Int32? {
        lock.withLock {
            guard let process, !process.isRunning else { return nil }
            return process.terminationStatus
        }
    }
}

/// A one-line error of the harness.
public struct HarnessError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) { self.description = description }
}
