import Foundation
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool-storage-bench --section partitions` against the real spoold, at a tiny scale: every
    /// case reports its rows, and a broker that serves other records than were written stops the
    /// bench with an error. No figure is checked against a goal: these machines are small and shared.
    @Suite struct StorageBenchPartitionsTests {
        /// Options for a small, quick run into `directory`.
        private static func arguments(directory: String, spoold: String, shapes: [Int]) -> [String] {
            ["--section", "partitions", "--dir", directory, "--spoold", spoold, "--partition-count", "50", "--partition-batches", "3",
             "--repeat", "1", "--latency-requests", "20", "--producers", "2", "--in-flight", "2", "--csv"]
                + shapes.flatMap { ["--topic-shape", "\($0)"] }
        }

        /// Processes other than this one whose command line mentions `path`.
        private static func processes(mentioning path: String) -> [String] {
            let own = "\(getpid())"
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return pids.filter { pid in
                guard pid != own, pid.allSatisfy(\.isNumber), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                return String(decoding: data, as: UTF8.self).contains(path)
            }
        }

        @Test(.timeLimit(.minutes(4)))
        func everyCaseReportsItsRowsAndNothingIsLeftBehind() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-partitions-bench")
            let result = try await runStorageBench(Self.arguments(directory: directory.path, spoold: try Binaries.spoold, shapes: [1, 10]),
                                                   timeout: .seconds(200))
            #expect(result.termination == .exited(0), "\(result)")
            let rows = try BenchTests.parseCSV(result.stdoutText)
            let columns = try #require(rows.first)
            let records = rows.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(columns, $0)) }
            let cases = ["create every topic", "write 3 batches", "open after a clean stop", "open after kill -9", "read every partition",
                         "metadata of one random topic", "metadata of every topic", "list offsets", "create one more topic"]
            for (shape, prefix) in [(1, "50 topics × 1 partition: "), (10, "5 topics × 10 partitions: ")] {
                let shapeRows = records.filter { $0["case"]?.hasPrefix(prefix) == true }
                #expect(shapeRows.count == cases.count, "shape \(shape): \(shapeRows.map { $0["case"] ?? "" })")
                for (row, name) in zip(shapeRows, cases) {
                    #expect(row["section"] == "partitions" && row["case"]?.dropFirst(prefix.count).hasPrefix(name) == true, "\(row)")
                    #expect(row["seconds"].flatMap(Double.init).map { $0 > 0 } == true, "\(row)")
                }
                let written = shapeRows.first { $0["case"]?.contains("write") == true }
                #expect(written?["notes"]?.contains("2 segments per partition") == true, "three 1.7 KB batches make two 4 KiB segments: \(written ?? [:])")
                // 50 partitions × 3 batches × 15 records of 100 bytes.
                #expect(written?["megabytes"] == "0.225", "\(written ?? [:])")
                let read = shapeRows.first { $0["case"]?.contains("read every partition") == true }
                #expect(read?["megabytes"] == "0.225" && read?["notes"]?.contains("descriptors") == true, "\(read ?? [:])")
            }
            #expect(result.stderr.contains("open after kill -9 (SIGKILL while idle): 10 s / measured"), "the goal lines: \(result.stderr)")
            #expect(Self.processes(mentioning: directory.path).isEmpty, "a spoold outlived the bench")
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty, "the bench removes its files")
        }

        @Test(.timeLimit(.minutes(3)))
        func failsLoudlyWhenTheBrokerServesOtherRecords() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-partitions-bench-swap")
            // From its second start on, this spoold swaps the data of two partitions first: every
            // batch stays valid and the counts stay right, only the records are not where they were written.
            let wrapper = directory.appending("swapping-spoold")
            try """
                #!/bin/sh
                previous=""
                for argument in "$@"; do
                    [ "$previous" = "--data-dir" ] && data="$argument"
                    previous="$argument"
                done
                if [ -e "$data.started" ]; then
                    mv "$data/p1-00000/0" "$data.swap" && mv "$data/p1-00001/0" "$data/p1-00000/0" && mv "$data.swap" "$data/p1-00001/0"
                fi
                touch "$data.started"
                exec '\(try Binaries.spoold)' "$@"
                """.write(toFile: wrapper, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)
            let benchDirectory = directory.appending("bench")
            try FileManager.default.createDirectory(atPath: benchDirectory, withIntermediateDirectories: false)

            let result = try await runStorageBench(Self.arguments(directory: benchDirectory, spoold: wrapper, shapes: [1]), timeout: .seconds(150))
            #expect(result.termination != .exited(0), "\(result)")
            #expect(result.stderr.contains("verification failed: p1-0000"), "\(result.stderr)")
            #expect(Self.processes(mentioning: benchDirectory).isEmpty, "a spoold outlived the failed bench")
            #expect(try FileManager.default.contentsOfDirectory(atPath: benchDirectory).isEmpty, "the failed bench removes its files")
        }
    }
}
