import Foundation
import Synchronization
import Testing

/// A failure of the test harness itself (a binary missing, a process that would not start or stop).
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Where `spoold` and `spool` are: `$SPOOL_BIN_DIR`, else the directory of this test binary
/// (SwiftPM puts the products of the package's executable targets next to it).
enum Binaries {
    static let directory: String = {
        if let override = ProcessInfo.processInfo.environment["SPOOL_BIN_DIR"], !override.isEmpty { return override }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let resolved = URL(fileURLWithPath: executable).resolvingSymlinksInPath()
        return resolved.deletingLastPathComponent().path
    }()

    static var spoold: String { get throws { try path("spoold") } }
    static var spool: String { get throws { try path("spool") } }
    static var storageBench: String { get throws { try path("spool-storage-bench") } }

    private static func path(_ name: String) throws -> String {
        let path = "\(directory)/\(name)"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("\(name) is not at \(path); build it (swift build --build-tests) or set SPOOL_BIN_DIR")
        }
        return path
    }
}

/// Everything a child process writes to one pipe, read by a thread of its own as it arrives.
final class OutputCollector: Sendable {
    private let state = Mutex<(data: Data, closed: Bool)>((Data(), false))

    init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                state.withLock { $0.data.append(chunk) }
            }
            state.withLock { $0.closed = true }
        }
        thread.name = "spool-test-output"
        thread.start()
    }

    var data: Data { state.withLock { $0.data } }
    var text: String { String(decoding: data, as: UTF8.self) }
    /// Complete lines so far (a trailing unterminated line is left out).
    var lines: [String] {
        let text = text
        guard let lastNewline = text.lastIndex(of: "\n") else { return [] }
        return text[..<lastNewline].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }
    /// True once the writer closed the pipe (usually: the process exited).
    var isClosed: Bool { state.withLock { $0.closed } }
}

/// How a process ended.
enum Termination: Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    var description: String {
        switch self {
        case .exited(let code): "exit code \(code)"
        case .signalled(let signal): "signal \(signal)"
        }
    }
}

/// A child process with its standard output and error captured.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let process: Process
    let stdout: OutputCollector
    let stderr: OutputCollector

    /// Starts `executable`. Standard input is `input` (written by a thread, then closed) or /dev/null.
    init(_ executable: String, _ arguments: [String], input: Data? = nil) throws {
        name = URL(fileURLWithPath: executable).lastPathComponent
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe: Pipe? = input == nil ? nil : Pipe()
        process.standardInput = inPipe ?? FileHandle.nullDevice
        try process.run()
        // Close our copies of the child's ends, so reads see end-of-file when it exits.
        try? outPipe.fileHandleForWriting.close()
        try? errPipe.fileHandleForWriting.close()
        stdout = OutputCollector(outPipe.fileHandleForReading)
        stderr = OutputCollector(errPipe.fileHandleForReading)
        if let inPipe, let input {
            try? inPipe.fileHandleForReading.close()
            let writer = inPipe.fileHandleForWriting
            let thread = Thread {
                try? writer.write(contentsOf: input)
                try? writer.close()
            }
            thread.start()
        }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// How it ended, or nil while it runs.
    var termination: Termination? {
        guard !process.isRunning else { return nil }
        return process.terminationReason == .exit ? .exited(process.terminationStatus) : .signalled(process.terminationStatus)
    }

    func send(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits (polling, without blocking a thread) until the process ends; nil if it is still
    /// running after `timeout`.
    func waitForExit(timeout: Duration) async -> Termination? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning, clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return termination
    }

    /// Waits until the output pipes are closed too (the collectors have everything), bounded.
    func waitForOutput(timeout: Duration = .seconds(10)) async {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !(stdout.isClosed && stderr.isClosed), clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// SIGKILL if still running, then waits for it to be reaped. For `defer` blocks: synchronous.
    func killAndReap() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// The outcome of a command run to completion.
struct CommandResult: CustomStringConvertible {
    let termination: Termination
    let stdout: Data
    let stderr: String

    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stdoutLines: [String] {
        var lines = stdoutText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }

    var description: String {
        "\(termination); stderr: \(stderr.isEmpty ? "(empty)" : stderr); stdout: \(stdout.count) bytes"
    }
}

/// Runs `spool` with `arguments` (and `input` on standard input) to completion; kills it and
/// throws if it runs longer than `timeout` (a hang, not a slow run).
func runSpool(_ arguments: [String], input: Data? = nil, timeout: Duration = .seconds(120)) async throws -> CommandResult {
    try await run(try Binaries.spool, arguments, input: input, timeout: timeout)
}

/// Runs `spool-storage-bench` with `arguments` to completion; kills it and throws if it runs
/// longer than `timeout`.
func runStorageBench(_ arguments: [String], timeout: Duration) async throws -> CommandResult {
    try await run(try Binaries.storageBench, arguments, input: nil, timeout: timeout)
}

/// Runs `spoold` with `arguments` to completion (for runs that must fail at once), without its
/// HTTP listener unless `arguments` name one (tests run in parallel; the default port is shared).
func runSpoold(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> CommandResult {
    try await run(try Binaries.spoold, withoutDefaultHTTP(arguments), input: nil, timeout: timeout)
}

/// `arguments` plus `--http-listen off` unless they set `--http-listen` themselves.
func withoutDefaultHTTP(_ arguments: [String]) -> [String] {
    arguments.contains("--http-listen") ? arguments : arguments + ["--http-listen", "off"]
}

private func run(_ executable: String, _ arguments: [String], input: Data?, timeout: Duration) async throws -> CommandResult {
    let child = try ChildProcess(executable, arguments, input: input)
    defer { child.killAndReap() }
    guard let termination = await child.waitForExit(timeout: timeout) else {
        child.killAndReap()
        await child.waitForOutput()
        throw HarnessError("\(child.name) \(arguments.joined(separator: " ")) did not finish within \(timeout); stderr: \(child.stderr.text)")
    }
    await child.waitForOutput()
    return CommandResult(termination: termination, stdout: child.stdout.data, stderr: child.stderr.text)
}

