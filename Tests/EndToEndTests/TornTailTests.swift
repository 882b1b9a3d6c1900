import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// A crash can leave the active segment with a torn or garbled tail; spoold must cut exactly
    /// the damaged batches, say so, and go on from the last whole batch.
    @Suite struct TornTailTests {
        enum Damage: String, CaseIterable, CustomStringConvertible {
            case appendGarbage, appendZeros, truncateInsideLastBatch, truncateInsideEarlierBatch, garbleLastBatch
            var description: String { rawValue }
        }

        /// Byte ranges of the batches in a `.log` file, read from their length fields.
        static func batchRanges(of bytes: [UInt8]) throws -> [Range<Int>] {
            var ranges: [Range<Int>] = []
            var position = 0
            while position < bytes.count {
                guard bytes.count - position >= 12 else { throw HarnessError("a partial batch header at byte \(position)") }
                let length = (8..<12).reduce(0) { $0 | Int(bytes[position + $1]) << (8 * ($1 - 8)) }
                let end = position + 12 + length
                guard end <= bytes.count else { throw HarnessError("the batch at byte \(position) runs past the end") }
                ranges.append(position..<end)
                position = end
            }
            return ranges
        }

        @Test(.timeLimit(.minutes(4)), arguments: Damage.allCases)
        func restartCutsTheDamagedTailAndContinuesDensely(damage: Damage) async throws {
            var rng = SeededGenerator.logged("restartCutsTheDamagedTailAndContinuesDensely(\(damage))")
            let directory = try TemporaryDirectory(prefix: "spool-e2e-torn")
            let http = try freeLoopbackPort()
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"), extraArguments: ["--http-listen", "127.0.0.1:\(http)"])
            defer { daemon.cleanUp() }
            let topic = "torn"
            let client = try await daemon.makeClient()
            var batches: [[OutgoingRecord]] = []
            for _ in 0..<30 {
                let batch = (0..<Int.random(in: 1...10, using: &rng)).map { _ in rng.record(timestamp: 1_700_000_000_000) }
                try await client.publish(to: topic, records: batch)
                batches.append(batch)
            }
            client.close()
            #expect(try await daemon.kill9() == .signalled(SIGKILL))

            let logName = "00000000000000000000.log"
            let logPath = directory.appending("data/\(topic)/0/\(logName)")
            let original = Array(try Data(contentsOf: URL(fileURLWithPath: logPath)))
            let ranges = try Self.batchRanges(of: original)
            try #require(ranges.count == batches.count, "the log holds \(ranges.count) batches, \(batches.count) were published")

            // Damage the file; note how many batches must survive.
            var damaged = original
            let surviving: Int
            switch damage {
            case .appendGarbage:
                damaged += [0xFF] + rng.bytes(Int.random(in: 0..<300, using: &rng))
                surviving = batches.count
            case .appendZeros:
                damaged += [UInt8](repeating: 0, count: 4096)
                surviving = batches.count
            case .truncateInsideLastBatch:
                let last = ranges[ranges.count - 1]
                damaged.removeSubrange(Int.random(in: last.lowerBound + 1..<last.upperBound, using: &rng)...)
                surviving = batches.count - 1
            case .truncateInsideEarlierBatch:
                let victim = Int.random(in: 5..<batches.count - 1, using: &rng)
                let range = ranges[victim]
                damaged.removeSubrange(Int.random(in: range.lowerBound + 1..<range.upperBound, using: &rng)...)
                surviving = victim
            case .garbleLastBatch:
                let last = ranges[ranges.count - 1]
                damaged[Int.random(in: last.lowerBound + 17..<last.upperBound, using: &rng)] ^= 0x5A
                surviving = batches.count - 1
            }
            try Data(damaged).write(to: URL(fileURLWithPath: logPath))
            let keptBytes = surviving == 0 ? 0 : ranges[surviving - 1].upperBound
            let cutBytes = damaged.count - keptBytes
            let prefix = Array(batches.prefix(surviving).joined())
            print("\(damage): \(original.count) bytes -> \(damaged.count); expect \(surviving) of \(batches.count) batches, \(cutBytes) bytes cut from offset \(prefix.count)")

            try await daemon.start()
            let warnings = { daemon.stderr.split(separator: "\n").filter { $0.contains("warning") }.map(String.init) }
            #expect(await eventually(timeout: .seconds(10)) { !warnings().isEmpty }, "no warning after the damage; stderr: \(daemon.stderr)")
            let line = warnings().first { $0.contains(logName) } ?? ""
            #expect(line.contains("cut \(cutBytes) bytes"), "warning does not say what was cut: \(warnings())")
            #expect(line.contains("from offset \(prefix.count)"), "warning does not name the first lost offset: \(warnings())")
            let metrics = try await HTTPListenerTests.scrape(http)
            #expect(metrics["spool_recovery_cuts_total"] == 1, "the cut is counted: \(metrics["spool_recovery_cuts_total"] ?? -1)")

            let replay = try await runSpool(["replay", topic, "--from-beginning", "--format", "json", "--broker", daemon.endpoint])
            #expect(replay.termination == .exited(0), "\(replay)")
            expectRecords(try JSONRecord.parseLines(replay.stdoutLines), match: prefix, topic: topic)

            let writer = try await daemon.makeClient()
            defer { writer.close() }
            let next = OutgoingRecord(key: Array("after".utf8), value: Array("the next record".utf8), timestamp: 1_800_000_000_000)
            let result = try await writer.publish(to: topic, records: [next])
            #expect(result.baseOffset == Int64(prefix.count), "the first publish after recovery is not dense")
            expectRecords(try await writer.readToEnd(of: topic), match: prefix + [next], topic: topic)
        }
    }
}
