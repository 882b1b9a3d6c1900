import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool tail` driven interactively in a real terminal (tmux): it follows new records and
    /// Ctrl-C stops it cleanly with exit status 0.
    @Suite struct CLITerminalTests {
        /// tmux on the PATH, or nil.
        static let tmux: String? = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            .split(separator: ":").map { "\($0)/tmux" }.first { FileManager.default.isExecutableFile(atPath: $0) }

        @Test(.enabled(if: tmux != nil, "tmux is not installed: the interactive tail test needs it"), .timeLimit(.minutes(3)))
        func tailInATerminalFollowsNewRecordsAndStopsOnControlC() async throws {
            let tmux = try #require(Self.tmux)
            let directory = try TemporaryDirectory(prefix: "spool-e2e-tmux")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient()
            defer { client.close() }
            try await client.publish(to: "live", value: Array("before-start".utf8))

            // A server of our own (socket in the temporary directory), killed at the end.
            let socket = directory.appending("tmux.sock")
            func run(_ arguments: [String]) async throws -> String {
                let child = try ChildProcess(tmux, ["-S", socket] + arguments)
                defer { child.killAndReap() }
                guard let termination = await child.waitForExit(timeout: .seconds(30)) else { throw HarnessError("tmux \(arguments) hung") }
                await child.waitForOutput()
                guard termination == .exited(0) else { throw HarnessError("tmux \(arguments): \(termination): \(child.stderr.text)") }
                return child.stdout.text
            }
            _ = try await run(["-f", "/dev/null", "new-session", "-d", "-s", "spool", "-x", "160", "-y", "48", "env", "PS1=$ ", "sh"])
            defer { _ = try? Process.run(URL(fileURLWithPath: tmux), arguments: ["-S", socket, "kill-server"]).waitUntilExit() }
            let command = "\(try Binaries.spool) tail live --broker \(daemon.endpoint); echo tail-exit=$?"
            _ = try await run(["send-keys", "-t", "spool", command, "Enter"])
            func pane() async throws -> String { try await run(["capture-pane", "-p", "-t", "spool"]) }

            // tail starts at the end once connected: keep publishing until the pane shows a record.
            var number = 0
            let following = try await eventually(timeout: .seconds(60)) {
                try await client.publish(to: "live", value: Array("early-\(number)".utf8))
                number += 1
                try await Task.sleep(for: .milliseconds(100))
                return try await pane().contains("early-")
            }
            try #require(following, "the pane never showed a record: \(try await pane())")
            for final in 0..<3 { try await client.publish(to: "live", value: Array("final-\(final)".utf8)) }
            let shown = try await eventually(timeout: .seconds(30)) { try await pane().contains("final-2") }
            #expect(shown, "the pane does not show the last record: \(try await pane())")

            _ = try await run(["send-keys", "-t", "spool", "C-c"])
            let stopped = try await eventually(timeout: .seconds(30)) { try await pane().contains("tail-exit=") }
            let screen = try await pane()
            #expect(stopped && screen.contains("tail-exit=0"), "Ctrl-C did not end tail with status 0: \(screen)")
            #expect(!screen.contains("before-start"), "tail printed a record from before it started: \(screen)")
            let finals = screen.split(separator: "\n").filter { $0.contains("final-") }
            #expect(finals.count == 3 && finals.allSatisfy { $0.first?.isNumber == true }, "records are lines 'offset  key  value': \(screen)")
        }
    }
}
