import BenchmarkSupport
import Foundation
import Glibc
import Logging
import Spool
import SpoolTesting
import Synchronization

/// One real `spoold` process on a data directory and a free loopback port, started by the
/// partitions section: `spoold --listen tcp://127.0.0.1:<port> --data-dir <dir> --http-listen off`
/// (plus `--config <file>` if given). ``start(executable:dataDirectory:configFile:directory:)``
/// returns once the broker has answered a metadata request. Its standard error is collected for
/// error messages. Not thread-safe: one task starts, measures and stops it.
final class BrokerProcess {
    /// How long a start or a stop may take before the bench gives up on it (a hang, not a slow run).
    static let patience: Duration = .seconds(120)
    /// Lines of standard error quoted in an error message.
    private static let quotedLines = 20

    /// The endpoint it listens on.
    let endpoint: String
    /// The client whose connection (its first metadata request) found the broker ready.
    let client: SpoolClient
    /// Seconds from spawning the process to the first answered metadata request.
    let readySeconds: Double
    /// Seconds from spawning the process to the arrival of its `listening` log line, if it came first.
    let listeningSeconds: Double?
    private let process: Process
    private let standardError: StandardErrorCollector
    private let directory: BenchDirectory

    private init(endpoint: String, client: SpoolClient, readySeconds: Double, listeningSeconds: Double?, process: Process,
                 standardError: StandardErrorCollector, directory: BenchDirectory) {
        self.endpoint = endpoint
        self.client = client
        self.readySeconds = readySeconds
        self.listeningSeconds = listeningSeconds
        self.process = process
        self.standardError = standardError
        self.directory = directory
    }

    /// The process id.
    var pid: pid_t { process.processIdentifier }

    /// Spawns `executable` on `dataDirectory` and a free loopback port, then connects a client
    /// over and over (every 5 ms) until one gets its metadata answer. `directory` tracks the
    /// process so that an interrupted bench kills it. Tries another port when the chosen one was
    /// taken meanwhile; throws, quoting the broker's standard error, if it exits or does not
    /// answer within ``patience``.
    static func start(executable: String, dataDirectory: String, configFile: String?,
                      directory: BenchDirectory) async throws -> BrokerProcess {
        for attempt in 1...3 {
            let endpoint = "tcp://127.0.0.1:\(try freeLoopbackPort())"
            var arguments = ["--listen", endpoint, "--data-dir", dataDirectory, "--http-listen", "off"]
            if let configFile { arguments += ["--config", configFile] }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            let pipe = Pipe()
            process.standardError = pipe
            let stopwatch = Stopwatch()
            do {
                try process.run()
            } catch {
                throw BenchError("cannot start \(executable): \(error)")
            }
            directory.track(process: process.processIdentifier)
            // With our copy of the writing end closed, reading sees end-of-file when spoold exits.
            try? pipe.fileHandleForWriting.close()
            let standardError = StandardErrorCollector(pipe.fileHandleForReading, stopwatch: stopwatch, marker: "listening")
            while stopwatch.seconds < patience.seconds, process.isRunning {
                if let client = try? await SpoolClient(endpoint: endpoint, configuration: ClientConfiguration(connectTimeout: .seconds(1)), logger: quietClientLogger) {
                    return BrokerProcess(endpoint: endpoint, client: client, readySeconds: stopwatch.seconds,
                                         listeningSeconds: standardError.markerSeconds, process: process,
                                         standardError: standardError, directory: directory)
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
            let hung = process.isRunning
            killAndReap(process, directory: directory)
            await standardError.waitUntilClosed()
            if standardError.text.contains("cannot listen"), attempt < 3 { continue }
            throw BenchError("spoold on \(dataDirectory) \(hung ? "did not answer within \(patience)" : "exited during start-up"): "
                + standardError.tail(lines: quotedLines))
        }
        throw BenchError("spoold found no free port in 3 attempts")
    }

    /// Sends `signal` (SIGTERM: graceful stop; SIGKILL: a crash) and waits until the process has
    /// exited; returns the seconds that took. Throws, after a SIGKILL, if it is still running
    /// after ``patience``, and if a SIGTERM ended it with anything but status 0.
    func stop(with signal: Int32) async throws -> Double {
        client.close()
        let stopwatch = Stopwatch()
        kill(pid, signal)
        while process.isRunning {
            guard stopwatch.seconds < Self.patience.seconds else {
                Self.killAndReap(process, directory: directory)
                throw BenchError("spoold (pid \(pid)) did not exit within \(Self.patience) of signal \(signal): \(standardErrorTail)")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
        let seconds = stopwatch.seconds
        directory.untrack(process: pid)
        await standardError.waitUntilClosed()
        if signal == SIGTERM, process.terminationReason != .exit || process.terminationStatus != 0 {
            throw BenchError("spoold did not stop cleanly on SIGTERM (status \(process.terminationStatus)): \(standardErrorTail)")
        }
        return seconds
    }

    /// Kills the process with SIGKILL if it still runs and reaps it: for `defer` blocks and failure paths.
    func killIfRunning() {
        client.close()
        Self.killAndReap(process, directory: directory)
    }

    /// Resident memory and open descriptors now, from `/proc/<pid>/status` and `/proc/<pid>/fd`.
    func usage() throws -> ProcessUsage {
        guard let residentBytes = residentBytes(ofProcess: pid),
              let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count else {
            throw BenchError("cannot read the memory and descriptors of spoold (pid \(pid)) from /proc")
        }
        return ProcessUsage(residentBytes: residentBytes, descriptors: descriptors)
    }

    /// True when the broker has written `text` to its standard error (in a log line).
    func logged(_ text: String) -> Bool {
        standardError.text.contains(text)
    }

    /// The last lines the broker wrote to its standard error, for an error message.
    var standardErrorTail: String { standardError.tail(lines: Self.quotedLines) }

    /// SIGKILL (if it still runs), wait for the exit, and stop tracking it.
    private static func killAndReap(_ process: Process, directory: BenchDirectory) {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        directory.untrack(process: process.processIdentifier)
    }
}

/// A logger that drops everything, for the bench's clients of spoold.
let quietClientLogger = Logger(label: "spool-storage-bench.client", factory: { _ in SwiftLogNoOpLogHandler() })

/// What a process holds at one moment.
struct ProcessUsage: Sendable {
    /// Resident memory (VmRSS).
    let residentBytes: Int
    /// Open file descriptors (entries of `/proc/<pid>/fd`).
    let descriptors: Int

    /// `RSS 45.2 MiB, 4,012 descriptors`.
    var description: String {
        "RSS \(decimal(Double(residentBytes) / Double(1 << 20), digits: 1)) MiB, \(grouped(descriptors)) descriptors"
    }
}

/// Everything a child writes to its standard error, read by a thread of its own as it arrives,
/// and when the first line holding a marker arrived. Thread-safe (a mutex).
private final class StandardErrorCollector: Sendable {
    private let state = Mutex<(text: String, markerSeconds: Double?, closed: Bool)>(("", nil, false))

    /// Starts reading `handle` until end-of-file; `stopwatch` times the arrival of `marker`.
    init(_ handle: FileHandle, stopwatch: Stopwatch, marker: String) {
        let thread = Thread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                let seconds = stopwatch.seconds
                let text = String(decoding: chunk, as: UTF8.self)
                state.withLock { state in
                    state.text += text
                    // spoold writes each log line whole, so a marker never straddles two chunks.
                    if state.markerSeconds == nil, text.contains(marker) { state.markerSeconds = seconds }
                }
            }
            state.withLock { $0.closed = true }
        }
        thread.name = "spool-bench-stderr"
        thread.start()
    }

    /// Everything read so far.
    var text: String { state.withLock { $0.text } }
    /// Seconds on the stopwatch when the marker first arrived, or nil.
    var markerSeconds: Double? { state.withLock { $0.markerSeconds } }

    /// The last `count` lines read so far, or `(nothing)`.
    func tail(lines count: Int) -> String {
        let lines = text.split(separator: "\n").suffix(count)
        return lines.isEmpty ? "(nothing on standard error)" : lines.joined(separator: "\n")
    }

    /// Waits, at most 5 s, until the writer has closed the pipe (the process exited).
    func waitUntilClosed() async {
        let stopwatch = Stopwatch()
        while !state.withLock({ $0.closed }), stopwatch.seconds < 5 {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}
