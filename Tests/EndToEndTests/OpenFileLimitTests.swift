import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// The open-file budget: spoold raises its soft limit to the hard one, and says at start, with
    /// the number, when the partitions on disk leave too little for clients and new topics.
    @Suite struct OpenFileLimitTests {
        /// `sh -c 'ulimit <flags> <n>; exec spoold …'`.
        private static func launcher(_ flags: String, _ limit: Int) -> [String] {
            ["/bin/sh", "-c", "ulimit \(flags) \(limit) && exec \"$0\" \"$@\""]
        }

        @Test(.timeLimit(.minutes(3)))
        func raisesTheSoftLimitAndWarnsWithTheNumberWhenTheBudgetIsShort() async throws {
            var hard = rlimit()
            try #require(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &hard) == 0 && hard.rlim_max > 600, "this test needs a hard limit above 600")
            let directory = try TemporaryDirectory(prefix: "spool-e2e-nofile")
            let raised = try await Daemon.start(dataDirectory: directory.appending("data"), launcher: Self.launcher("-Sn", 100))
            defer { raised.cleanUp() }
            #expect(raised.stderr.contains("raisedFrom=100") && raised.stderr.contains("open-file budget"), "\(raised.stderr)")
            let client = try await raised.makeClient()
            for index in 0..<40 { try await client.createTopic("t\(index)") }
            client.close()
            try await raised.terminate()

            // 40 partitions of one segment hold 160 descriptors; with the 256 kept for clients, 416 are needed.
            let short = try await Daemon.start(dataDirectory: directory.appending("data"), launcher: Self.launcher("-n", 300))
            defer { short.cleanUp() }
            #expect(short.stderr.contains("open-file limit is short") && short.stderr.contains("to at least 416"), "\(short.stderr)")
            let reader = try await short.makeClient()
            defer { reader.close() }
            #expect(try await reader.topics().count == 40, "what fits still opens")
        }
    }
}
