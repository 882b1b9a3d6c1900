@_spi(Testing) @testable import SpoolStorage
@_spi(Testing) import SpoolTesting
import Synchronization
import Testing

@Suite struct GroupCommitFlusherTests {
    /// With a slow disk, the submits that arrive while a round runs share the next round: far fewer
    /// rounds (and syncs) than submits, and each key's durable offset only grows to the log end.
    @Test(.timeLimit(.minutes(1)))
    func groupsSubmitsThatArriveDuringARound() async throws {
        var rng = SeededGenerator.logged()
        try await withTemporaryDirectory { directory in
            let faults = FaultInjector()
            faults.delaySyncs(by: .milliseconds(20))
            let logs = try (0..<2).map { try openLog("\(directory)/\($0)", segmentBytes: 4096, io: faults.io) }
            let durable = Mutex<[Int: [Int64]]>([:])
            let flusher = GroupCommitFlusher<Int> { round in
                durable.withLock { durable in
                    for (key, result) in round { durable[key, default: []].append(try! result.get()) }
                }
            }
            defer { flusher.shutdown() }

            let submits = 200
            var models = [LogModel(), LogModel()]
            for number in 0..<submits {
                let key = number % 2
                try append(makeBatch(timestamp: Int64(number), maxValueBytes: 50, using: &rng), to: logs[key], model: &models[key])
                flusher.submit(try #require(logs[key].takeSyncWork()), for: key)
            }
            try await waitUntil { durable.withLock { $0[0]?.last == logs[0].logEndOffset && $0[1]?.last == logs[1].logEndOffset } }

            let rounds = flusher.roundCount
            #expect(rounds < submits / 10, "\(rounds) rounds for \(submits) submits")
            // One sync per distinct file per round: each round covers at most both logs' files
            // (active, sealed .log and .index after a roll) and directories.
            let segments = try logs.indices.map { try files(in: "\(directory)/\($0)", suffix: ".log").count }
            #expect(faults.syncCount <= rounds * 2 + segments.reduce(0, +) * 3)
            for offsets in durable.withLock({ Array($0.values) }) {
                #expect(zip(offsets, offsets.dropFirst()).allSatisfy { $0 < $1 }, "\(offsets)")
            }
        }
    }

    /// Shutdown runs what is pending before it returns; later submits are refused at once.
    @Test(.timeLimit(.minutes(1)))
    func shutdownFinishesPendingRoundsThenRefuses() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            let faults = FaultInjector()
            faults.delaySyncs(by: .milliseconds(10))
            let log = try openLog(directory, segmentBytes: 1 << 20, io: faults.io)
            let reported = Mutex<[Result<Int64, StorageError>]>([])
            let flusher = GroupCommitFlusher<String> { round in reported.withLock { $0 += round.map(\.result) } }
            var model = LogModel()
            for number in 0..<20 {
                try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model)
                flusher.submit(try #require(log.takeSyncWork()), for: "p")
            }
            flusher.shutdown()
            #expect(try reported.withLock { $0 }.last?.get() == model.endOffset)
            flusher.shutdown()

            let before = reported.withLock { $0.count }
            try append(makeBatch(timestamp: 99, using: &rng), to: log, model: &model)
            flusher.submit(try #require(log.takeSyncWork()), for: "p")
            let refused = try #require(reported.withLock { $0 }.last)
            #expect(reported.withLock { $0.count } == before + 1)
            guard case .failure(let error) = refused else {
                Issue.record("a submit after shutdown was reported durable")
                return
            }
            #expect(error.code == .closed)
        }
    }
}
