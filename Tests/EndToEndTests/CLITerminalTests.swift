import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool tail` driven interactively in a real terminal (tmux): it follows new records and
    /// Ctrl-C stops it cleanly with exit status 0.
    @Suite struct CLITerminalTests {
        /// tmux on the PATH, or nil (also nil without /bin/bash, which starts it).
        static let tmux: String? = FileManager.default.isExecutableFile(atPath: "/bin/bash")
            ? (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/tmux" }
                .first { FileManager.default.isExecutableFile(atPath: $0) }
            : nil

        @Test(.enabled(if: tmux != nil, "tmux (or /bin/bash) is not installed: the interactive tail test needs both"), .timeLimit(.minutes(3)))
        func tailInATerminalFollowsNewRecordsAndStopsOnControlC() async throws {
            let tmux = try #require(Self.tmux)
            let directory = try TemporaryDirectory(prefix: "spool-e2e-tmux")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient()
            defer { client.close() }
            try await client.publish(to: "live", value: Array("before-start".utf8))

            // A server of our own (socket in the temporary directory), killed at the end. tmux runs
            // under bash with every descriptor above 2 closed and its output in a file: the server
            // it forks must not inherit our pipes, nor the socket by which Foundation sees a child exit.
            let socket = directory.appending("tmux.sock")
            let output = directory.appending("tmux.out")
            let script = #"for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; out="$1"; shift; "$@" > "$out" 2>&1 < /dev/null"#
            func run(_ arguments: [String]) async throws -> String {
                let child = try ChildProcess("/bin/bash", ["-c", script, "bash", output, tmux, "-S", socket] + arguments)
                defer { child.killAndReap() }
                guard let termination = await child.waitForExit(timeout: .seconds(30)) else { throw HarnessError("tmux \(arguments) hung") }
                let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
                guard termination == .exited(0) else { throw HarnessError("tmux \(arguments): \(termination): \(text)") }
                return text
            }
            _ = try await run(["-f", "/dev/null", "new-session", "-d", "-s", "spool", "-x", "160", "-y", "48", "env", "PS1=$ ", "sh"])
            // The server inherits this process's blocked signals, so kill-server alone may leave it
            // running: SIGKILL (which cannot be blocked) ends it when the test ends, however it ends.
            let serverPID = try #require(Int32(try await run(["display-message", "-p", "#{pid}"]).trimmingCharacters(in: .whitespacesAndNewlines)))
            defer { kill(serverPID, SIGKILL) }
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
            let afterStart = try await pane()
            try #require(following, "the pane never showed a record: \(afterStart)")
            for final in 0..<3 { try await client.publish(to: "live", value: Array("final-\(final)".utf8)) }
            let shown = try await eventually(timeout: .seconds(30)) { try await pane().contains("final-2") }
            let withFinals = try await pane()
            #expect(shown, "the pane does not show the last record: \(withFinals)")

            _ = try await run(["send-keys", "-t", "spool", "C-c"])
            let stopped = try await eventually(timeout: .seconds(30)) { try await pane().contains("tail-exit=") }
            let screen = try await pane()
            #expect(stopped && screen.contains("tail-exit=0"), "Ctrl-C did not end tail with status 0: \(screen)")
            #expect(!screen.contains("before-start"), "tail printed a record from before it started: \(screen)")
            let finals = screen.split(separator: "\n").filter { $0.contains("final-") }
            #expect(finals.count == 3 && finals.allSatisfy { $0.first?.isNumber == true }, "records are lines 'offset  key  value': \(screen)")

            // Colour on a terminal (the position dimmed), none with NO_COLOR.
            for (prefix, coloured) in [("env -u NO_COLOR ", true), ("env NO_COLOR=1 ", false)] {
                let command = "clear; \(prefix)\(try Binaries.spool) tail live --last 1 --exit-at-end --broker \(daemon.endpoint); echo done=$?"
                _ = try await run(["send-keys", "-t", "spool", command, "Enter"])
                let finished = try await eventually(timeout: .seconds(60)) { try await pane().contains("done=0") }
                let styled = try await run(["capture-pane", "-e", "-p", "-t", "spool"])
                #expect(finished && styled.contains("final-2"), "\(styled)")
                #expect(styled.contains("\u{1B}[2m") == coloured, "\(coloured ? "no colour on a terminal" : "colour despite NO_COLOR"): \(styled.debugDescription)")
            }

            // replay --to on a terminal draws its progress bar on standard error and ends complete.
            let count = try await client.offset(of: "live", .latest)
            let replay = "clear; \(try Binaries.spool) replay live --from-beginning --to live-copy --broker \(daemon.endpoint); echo replay-exit=$?"
            _ = try await run(["send-keys", "-t", "spool", replay, "Enter"])
            let replayed = try await eventually(timeout: .seconds(60)) { try await pane().contains("replay-exit=") }
            let progress = try await pane()
            #expect(replayed && progress.contains("replay-exit=0"), "\(progress)")
            #expect(progress.contains("100% [##############################] \(count)/\(count) records") && progress.contains("records/s, done"),
                    "no finished progress bar: \(progress)")
            #expect(progress.contains("copied \(count) records from live to live-copy"), "\(progress)")
        }
    }
}
