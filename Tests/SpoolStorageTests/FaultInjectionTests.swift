import Glibc
@_spi(Testing) @testable import SpoolStorage
@_spi(Testing) import SpoolTesting
import SpoolWire
import Synchronization
import Testing

/// Fails the k-th write or sync through the file-I/O seam and checks the log stays consistent.
@Suite struct FaultInjectionTests {
    /// The k-th write from now fails (an index entry or a batch, possibly after a short write):
    /// the append throws, the log is unchanged, the next append works, a reopen finds nothing to fix.
    @Test(arguments: 1...8, [0, 5, 300])
    func failedWriteLeavesLogUnchanged(failingWrite: Int, partialBytes: Int) throws {
        var rng = SeededGenerator.logged("failedWriteLeavesLogUnchanged(\(failingWrite), \(partialBytes))")
        try withTemporaryDirectory { directory in
            let faults = FaultInjector()
            let log = try openLog(directory, segmentBytes: 2048, indexIntervalBytes: 128, io: faults.io)
            var model = LogModel()
            for number in 0..<10 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }

            faults.failWrite(number: failingWrite, partialBytes: partialBytes)
            var failure: StorageError?
            for number in 0..<(failingWrite + 2) where failure == nil {
                let batch = makeBatch(timestamp: 100 + Int64(number), using: &rng)
                do {
                    try append(batch, to: log, model: &model)
                } catch let error as StorageError {
                    failure = error
                }
            }
            let error = try #require(failure)
            #expect(error.code == .io)
            #expect(error.errno == FaultInjector.writeError)
            #expect(error.message.contains("write to \(directory)/"))
            #expect(log.logEndOffset == model.endOffset)
            #expect(log.sizeInBytes == model.byteCount)
            #expect(try readAllBatches(log) == model.batches)

            try append(makeBatch(timestamp: 200, using: &rng), to: log, model: &model)
            #expect(try readAllBatches(log) == model.batches)
            log.close()
            let reopened = try openLog(directory, segmentBytes: 2048, indexIntervalBytes: 128)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(try readAllBatches(reopened) == model.batches)
        }
    }

    /// Recovery on a disk too full for the copy of a garbage tail (the copy's first write fails
    /// with ENOSPC, EDQUOT or EFBIG): the tail is still cut, the log opens with every whole batch,
    /// no partial copy is left, and the report says the bytes could not be copied aside and why.
    @Test(arguments: [ENOSPC, EDQUOT, EFBIG])
    func recoveryOnAFullDiskCutsTheTailWithoutACopy(errno: Int32) throws {
        var rng = SeededGenerator.logged("recoveryOnAFullDiskCutsTheTailWithoutACopy(\(errno))")
        try withTemporaryDirectory { directory in
            var model = LogModel()
            let log = try openLog(directory, segmentBytes: 1 << 20)
            for number in 0..<20 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            log.close()
            let active = try #require(try files(in: directory, suffix: ".log").last)
            let garbage = (0..<300).map { _ in UInt8.random(in: 1...255, using: &rng) }
            try writeFile(active, try fileBytes(active) + garbage)

            let faults = FaultInjector()
            faults.failWrite(number: 1, errno: errno)
            let reopened = try openLog(directory, segmentBytes: 1 << 20, io: faults.io)
            #expect(try readAllBatches(reopened) == model.batches)
            try #require(reopened.recoveryReports.count == 1)
            let report = reopened.recoveryReports[0]
            #expect(report.truncatedBytes == garbage.count)
            #expect(report.setAsidePath == nil)
            #expect(report.reason.contains("could not be copied aside") && report.reason.contains(DiskFault(errno: errno)!.description), "\(report)")
            #expect(try files(in: directory, suffix: ".corrupt").isEmpty, "no partial copy is left")
            try append(makeBatch(timestamp: 100, using: &rng), to: reopened, model: &model)
            #expect(try readAllBatches(reopened) == model.batches)
        }
    }

    /// When the rollback of a failed write fails too, the leftover lies past the log's end: reads
    /// never see it, the next append overwrites it, and recovery cuts what is left of it.
    @Test func leftoverOfFailedRollbackIsNeverRead() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { directory in
            let faults = FaultInjector()
            let log = try openLog(directory, segmentBytes: 1 << 20, indexIntervalBytes: 1 << 20, io: faults.io)
            var model = LogModel()
            for number in 0..<3 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            var builder = RecordBatchBuilder()
            builder.append(timestamp: 9, key: nil, value: rng.bytes(1000))
            let large = builder.finish()
            faults.failWrite(number: 1, partialBytes: 200)
            faults.failTruncates(true)
            #expect(throws: StorageError.self) { try append(large, to: log, model: &model) }
            faults.failTruncates(false)
            #expect(try readAllBatches(log) == model.batches)
            log.close()

            let reopened = try openLog(directory, segmentBytes: 1 << 20)
            #expect(reopened.recoveryReports.count == 1)
            #expect(reopened.recoveryReports.first?.truncatedBytes == 200)
            #expect(try readAllBatches(reopened) == model.batches)
            try append(makeBatch(timestamp: 10, using: &rng), to: reopened, model: &model)
        }
    }

    /// A failed fdatasync is reported for the key whose file failed, not for the others, and keeps
    /// being reported for that key.
    @Test(.timeLimit(.minutes(1)))
    func failedSyncIsReportedForItsKeyOnly() async throws {
        var rng = SeededGenerator.logged()
        try await withTemporaryDirectory { directory in
            let faults = FaultInjector()
            let failing = try openLog("\(directory)/a", segmentBytes: 1 << 20, io: faults.io)
            let healthy = try openLog("\(directory)/b", segmentBytes: 1 << 20)
            let results = Mutex<[(key: String, result: Result<Int64, StorageError>)]>([])
            let flusher = GroupCommitFlusher<String> { round in results.withLock { $0 += round } }
            defer { flusher.shutdown() }
            _ = failing.takeSyncWork()
            _ = healthy.takeSyncWork()

            var models = (LogModel(), LogModel())
            try append(makeBatch(timestamp: 0, using: &rng), to: failing, model: &models.0)
            try append(makeBatch(timestamp: 0, using: &rng), to: healthy, model: &models.1)
            faults.failSync(number: 1)
            flusher.submit(try #require(failing.takeSyncWork()), for: "a")
            flusher.submit(try #require(healthy.takeSyncWork()), for: "b")
            try await waitUntil { results.withLock { $0.count } == 2 }

            try append(makeBatch(timestamp: 1, using: &rng), to: failing, model: &models.0)
            flusher.submit(try #require(failing.takeSyncWork()), for: "a")
            try await waitUntil { results.withLock { $0.count } == 3 }

            let reported = results.withLock { $0 }
            let forA = reported.filter { $0.key == "a" }.map(\.result)
            #expect(forA.count == 2)
            for result in forA {
                guard case .failure(let error) = result else {
                    Issue.record("key a reported durable after its sync failed")
                    continue
                }
                #expect(error.code == .io)
                #expect(error.errno == FaultInjector.syncError)
                #expect(error.message.contains("fdatasync of \(directory)/a/"))
            }
            let forB = reported.filter { $0.key == "b" }.map { try? $0.result.get() }
            #expect(forB == [models.1.endOffset])
        }
    }

    /// What the broker does after a failed fdatasync: cut the log back to the last good sync and
    /// sync again under a new key. The appends after the cut get the same offsets, the next round
    /// proves them durable, and a reopen after a crash finds exactly the good prefix and them.
    @Test(.timeLimit(.minutes(1)))
    func appendsWorkAgainAfterAFailedSyncAndACutBack() async throws {
        var rng = SeededGenerator.logged()
        try await withTemporaryDirectory { directory in
            let faults = FaultInjector()
            let log = try openLog(directory, segmentBytes: 2048, io: faults.io)
            let results = Mutex<[(key: Int, result: Result<Int64, StorageError>)]>([])
            let flusher = GroupCommitFlusher<Int> { round in results.withLock { $0 += round } }
            defer { flusher.shutdown() }
            var model = LogModel()
            for number in 0..<10 { try append(makeBatch(timestamp: Int64(number), using: &rng), to: log, model: &model) }
            flusher.submit(try #require(log.takeSyncWork()), for: 0)
            try await waitUntil { results.withLock { $0.count } == 1 }
            let durableEnd = try #require(results.withLock { try? $0[0].result.get() })
            #expect(durableEnd == model.endOffset)

            // Appends that roll segments, then a sync that fails.
            var doomed = model
            for number in 0..<15 { try append(makeBatch(timestamp: 20 + Int64(number), using: &rng), to: log, model: &doomed) }
            faults.failSync(number: 1)
            flusher.submit(try #require(log.takeSyncWork()), for: 0)
            try await waitUntil { results.withLock { $0.count } == 2 }
            #expect(results.withLock { (try? $0[1].result.get()) == nil }, "the failed sync was reported as a failure")

            try log.truncate(to: durableEnd)
            #expect(try readAllBatches(log) == model.batches)
            for number in 0..<5 { try append(makeBatch(timestamp: 40 + Int64(number), using: &rng), to: log, model: &model) }
            flusher.submit(try #require(log.takeSyncWork()), for: 1)
            try await waitUntil { results.withLock { $0.count } == 3 }
            #expect(results.withLock { try? $0[2].result.get() } == model.endOffset)

            // A crash now (no close): the next open verifies everything and finds the same log.
            let reopened = try openLog(directory, segmentBytes: 2048)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(try readAllBatches(reopened) == model.batches)
        }
    }
}
