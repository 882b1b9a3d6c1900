import Foundation
import Spool
import SpoolTesting
import Synchronization
import Testing

extension EndToEndTests {
    /// What kill -9 and SIGTERM may and may not do to acknowledged records.
    @Suite struct CrashTests {
        /// What the producers learnt: acknowledged values with their offsets, and values whose
        /// publish failed (they may or may not be stored).
        final class Ledger: Sendable {
            struct State {
                var acknowledged: [String: Int64] = [:]
                var failed: Set<String> = []
            }
            private let state = Mutex(State())
            var snapshot: State { state.withLock { $0 } }
            var acknowledgedCount: Int { state.withLock { $0.acknowledged.count } }
            func acknowledge(_ values: [String], baseOffset: Int64) {
                state.withLock { state in
                    for (index, value) in values.enumerated() { state.acknowledged[value] = baseOffset + Int64(index) }
                }
            }
            func fail(_ values: [String]) { state.withLock { $0.failed.formUnion(values) } }
        }

        final class StopFlag: Sendable {
            private let flag = Atomic<Bool>(false)
            var isSet: Bool { flag.load(ordering: .relaxed) }
            func set() { flag.store(true, ordering: .relaxed) }
        }

        /// Kill -9 rounds: `SPOOL_CRASH_ROUNDS` (default 30, a minute or so here; set it higher
        /// to soak by hand, e.g. `SPOOL_CRASH_ROUNDS=500 scripts/crash-test.sh`).
        static let rounds = ProcessInfo.processInfo.environment["SPOOL_CRASH_ROUNDS"].flatMap { Int($0) } ?? 30

        @Test(.timeLimit(.minutes(30)))
        func everyAcknowledgedRecordSurvivesKillNine() async throws {
            var rng = SeededGenerator.logged("everyAcknowledgedRecordSurvivesKillNine")
            let directory = try TemporaryDirectory(prefix: "spool-e2e-kill")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let topic = "acks"
            let ledger = Ledger()

            for round in 0..<Self.rounds {
                // Each producer has its own client (its own connection), as separate services would.
                var clients: [SpoolClient] = []
                for _ in 0..<4 { clients.append(try await daemon.makeClient(ClientConfiguration(requestTimeout: .seconds(5)))) }
                let stop = StopFlag()
                let batchSizes = (0..<4).map { _ in Int.random(in: 1...20, using: &rng) }
                let producers = (0..<4).map { producer in
                    Task { [client = clients[producer]] in
                        var sequence = 0
                        while !stop.isSet {
                            let values = (0..<batchSizes[producer]).map { "r\(round)-p\(producer)-\(sequence)-\($0)" }
                            sequence += 1
                            do {
                                let result = try await client.publish(to: topic, records: values.map { OutgoingRecord(value: Array($0.utf8)) })
                                ledger.acknowledge(values, baseOffset: result.baseOffset)
                            } catch {
                                ledger.fail(values)
                                return
                            }
                        }
                    }
                }
                let acknowledgedBefore = ledger.acknowledgedCount
                let started = await eventually { ledger.acknowledgedCount > acknowledgedBefore }
                let delay = Int.random(in: 0...800, using: &rng)
                if started { try await Task.sleep(for: .milliseconds(delay)) }
                #expect(try await daemon.kill9() == .signalled(SIGKILL))
                stop.set()
                for producer in producers { await producer.value }
                for client in clients { client.close() }
                try #require(started, "round \(round): no publish was acknowledged before the kill")
                print("round \(round): killed \(delay) ms after the first acknowledgement; \(ledger.acknowledgedCount) acknowledged so far")

                try await daemon.start()
                let reader = try await daemon.makeClient()
                defer { reader.close() }
                let records = try await reader.readToEnd(of: topic)
                let state = ledger.snapshot
                #expect(records.map(\.offset) == Array(0..<Int64(records.count)), "round \(round): offsets are not dense")
                var seen: [String: Int64] = [:]
                for record in records {
                    let value = String(decoding: record.value, as: UTF8.self)
                    if let earlier = seen.updateValue(record.offset, forKey: value) {
                        Issue.record("round \(round): \(value) is stored twice, at \(earlier) and \(record.offset)")
                    }
                    if state.acknowledged[value] == nil && !state.failed.contains(value) {
                        Issue.record("round \(round): offset \(record.offset) holds \(value), which nobody published")
                    }
                }
                let lost = state.acknowledged.filter { seen[$0.key] != $0.value }
                #expect(lost.isEmpty, "round \(round): \(lost.count) acknowledged records are missing or moved, e.g. \(lost.sorted { $0.value < $1.value }.prefix(5))")
            }
        }

        @Test(.timeLimit(.minutes(5)), arguments: ["always", "interval", "never"])
        func sigtermStopsCleanlySoTheNextStartNeedsNoRepair(fsync: String) async throws {
            var rng = SeededGenerator.logged("sigtermStopsCleanlySoTheNextStartNeedsNoRepair(\(fsync))")
            let directory = try TemporaryDirectory(prefix: "spool-e2e-term")
            // Small segments and a dense index, so the stop has sealed segments and indexes to get right;
            // no retention, since the records carry a timestamp of 2023.
            let config = directory.appending("spoold.yaml")
            try "segment.bytes: 65536\nindex.interval.bytes: 512\nretention.ms: -1\n".write(toFile: config, atomically: true, encoding: .utf8)
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"),
                                                extraArguments: ["--config", config, "--fsync", fsync])
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient()
            var sent: [String: [OutgoingRecord]] = [:]
            for topic in ["first", "second"] {
                for _ in 0..<40 {
                    let batch = (0..<Int.random(in: 1...30, using: &rng)).map { _ in rng.record(timestamp: 1_700_000_000_000) }
                    let result = try await client.publish(to: topic, records: batch)
                    #expect(result.baseOffset == Int64(sent[topic, default: []].count))
                    sent[topic, default: []] += batch
                }
            }
            // A long poll parked at the end must be answered by the shutdown, not left hanging.
            let end = Int64(sent["first"]!.count)
            let parked = Task { try await client.fetch(from: "first", offset: end, maxWait: .seconds(20)) }
            try await Task.sleep(for: .milliseconds(200))

            #expect(try await daemon.terminate() == .exited(0), "stderr: \(daemon.stderr)")
            switch await parked.result {
            case .success(let reply): #expect(reply.records.isEmpty)
            case .failure(let error): #expect((error as? SpoolError)?.isRetriable == true, "\(error)")
            }
            client.close()
            let segments = try FileManager.default.contentsOfDirectory(atPath: directory.appending("data/first/0")).filter { $0.hasSuffix(".log") }
            #expect(segments.count > 1, "expected several segments, found \(segments)")
            #expect(FileManager.default.fileExists(atPath: directory.appending("data/@clean-shutdown")), "no clean-shutdown marker")

            try await daemon.start()
            let reader = try await daemon.makeClient()
            for (topic, records) in sent {
                expectRecords(try await reader.readToEnd(of: topic), match: records, topic: topic)
            }
            reader.close()
            #expect(try await daemon.terminate() == .exited(0))
            let restartLog = daemon.stderr
            let complaints = restartLog.split(separator: "\n").filter { $0.lowercased().contains("warning") || $0.lowercased().contains("error") }
            #expect(complaints.isEmpty, "the start after SIGTERM repaired something:\n\(complaints.joined(separator: "\n"))")
            #expect(!restartLog.isEmpty, "spoold logged nothing; is the stderr capture working?")
            #expect(restartLog.contains("cheap checks (clean shutdown)"), "the start after SIGTERM verified everything:\n\(restartLog)")
        }
    }
}
