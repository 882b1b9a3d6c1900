import Foundation
import Glibc
import Logging
@_spi(Testing) @testable import SpoolStorage
@_spi(Testing) import SpoolTesting
import SpoolWire
import Synchronization
import Testing

/// The consumer groups' committed offsets must survive kill -9, torn writes, corrupt bytes and a
/// crash at any step of a compaction, with exactly the commits a broker acknowledged or a prefix
/// of the unsynced ones.
@Suite struct OffsetStoreTests {
    // MARK: Round trip

    @Test func keepsTheLastCommitOfEveryPartitionAcrossReopen() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            var model = OffsetModel()
            let store = try openStore(directory)
            #expect(store.groups.isEmpty)
            for number in 1...300 {
                let (group, offsets) = randomCommit(using: &rng)
                let work = try store.commit(group: group, offsets: offsets)
                #expect(work.endOffset == Int64(number), "each commit's sync work ends at its sequence number")
                model.commit(group, offsets)
            }
            // A rewind is stored (consumers rewind on purpose), and within one commit the last
            // entry for a partition wins.
            let orders = TopicPartition(topic: "orders", partition: 0)
            let rewind = [CommittedOffset(partition: orders, offset: 1000, metadata: "first")]
            let back = [CommittedOffset(partition: orders, offset: 10, metadata: "x"), CommittedOffset(partition: orders, offset: 7, metadata: "back")]
            // The largest allowed group name and metadata.
            let longest = String(repeating: "é", count: OffsetStore.maxGroupBytes / 2) + "g"
            let large = [CommittedOffset(partition: orders, offset: 1, metadata: String(repeating: "m", count: OffsetStore.maxMetadataBytes))]
            for (group, offsets) in [("rewinder", rewind), ("rewinder", back), (longest, large)] {
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
            }
            #expect(store.committed(group: "rewinder", partition: orders) == CommittedOffset(partition: orders, offset: 7, metadata: "back"))
            #expect(store.committed(group: "nobody", partition: orders) == nil)
            #expect(store.committed(group: "rewinder", partition: TopicPartition(topic: "orders", partition: 1)) == nil)
            #expect(store.committed(group: "nobody").isEmpty)
            #expect(contents(of: store) == model.map)
            store.close()
            #expect(performing: { try store.commit(group: "g", offsets: rewind) }, throws: { ($0 as? StorageError)?.code == .closed })

            let reopened = try openStore(directory)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(reopened.groups == model.map.keys.sorted())
            #expect(contents(of: reopened) == model.map)
            let (group, offsets) = randomCommit(using: &rng)
            #expect(try reopened.commit(group: group, offsets: offsets).endOffset == 1)
            model.commit(group, offsets)
            reopened.close()
            #expect(contents(of: try openStore(directory)) == model.map)
        }
    }

    /// The byte layout is pinned: a log entry and a snapshot, with an independent CRC-32C.
    /// The snapshot's generation lies outside its checksum: raised by damage, it must not make
    /// the open delete the logs below it (and the commits in them).
    @Test func aDamagedSnapshotGenerationDoesNotDeleteTheLogs() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            var model = OffsetModel()
            let store = try openStore(directory)
            for round in 0..<20 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
                if round == 9 { try store.compact() }  // snapshot 1 and log 1; later commits go to log 1
            }
            store.close()
            // The generation is the u64 after "SPOS", the version byte and 3 reserved bytes.
            let snapshot = "\(directory)/offsets.snapshot"
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: snapshot)))
            bytes.replaceSubrange(8..<16, with: le(Int64(1000)))
            try Data(bytes).write(to: URL(fileURLWithPath: snapshot))

            let reopened = try openStore(directory)
            #expect(contents(of: reopened) == model.map, "every commit survives")
            #expect(reopened.recoveryReports.contains { $0.reason.contains("above every log") }, "\(reopened.recoveryReports)")
            reopened.close()
            let again = try openStore(directory)
            #expect(again.recoveryReports.isEmpty, "the snapshot was rewritten with a sound generation")
            #expect(contents(of: again) == model.map)
            again.close()
        }
    }

    @Test func fileBytesArePinned() throws {
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let store = try openStore(directory)
            _ = try store.commit(group: "g", offsets: [CommittedOffset(partition: TopicPartition(topic: "t", partition: 1), offset: 258, metadata: "m")])
            let payload: [UInt8] = [1, 0, 0x67, 1, 0, 0, 0, 1, 0, 0x74, 1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0x6D]
            #expect(referenceCRC32C(Array("123456789".utf8)) == 0xE306_9283)
            let header = Array("SPOL".utf8) + [1, 0, 0, 0]
            let log = "\(directory)/00000000000000000000.log"
            #expect(try fileBytes(log) == header + le(UInt32(payload.count)) + le(referenceCRC32C(payload)) + payload)

            try store.compact()
            let map = [1, 0, 0, 0] + payload
            #expect(try fileBytes("\(directory)/offsets.snapshot")
                == Array("SPOS".utf8) + [1, 0, 0, 0] + le(UInt64(1)) + le(UInt32(map.count)) + le(referenceCRC32C(map)) + map)
            #expect(try files(in: directory, suffix: ".log") == ["\(directory)/00000000000000000001.log"])
            #expect(try fileBytes("\(directory)/00000000000000000001.log") == header)
        }
    }

    // MARK: Recovery

    /// A crash in the middle of the last entry's write: every cut keeps exactly the entries
    /// before it, the cut bytes are set aside, and commits continue from there.
    @Test func tornLastEntryIsCutAtEveryByte() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            var model = OffsetModel()
            let store = try openStore(directory)
            for _ in 0..<5 {
                let (group, offsets) = randomCommit(using: &rng, maxMetadataBytes: 20)
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
            }
            let log = try #require(try files(in: directory, suffix: ".log").first)
            let start = try fileBytes(log).count
            let topic = TopicPartition(topic: "orders", partition: 3)
            _ = try store.commit(group: "billing", offsets: [CommittedOffset(partition: topic, offset: 99, metadata: "torn"),
                                                             CommittedOffset(partition: topic, offset: 100)])
            store.close()
            let whole = try fileBytes(log)

            for cut in start..<whole.count {
                try writeFile(log, Array(whole[..<cut]))
                let reopened = try openStore(directory)
                #expect(contents(of: reopened) == model.map, "cut at byte \(cut)")
                #expect(try fileBytes(log).count == start)
                if cut == start {
                    #expect(reopened.recoveryReports.isEmpty)
                } else {
                    let report = try #require(reopened.recoveryReports.first)
                    #expect(report.validBytes == start && report.truncatedBytes == cut - start)
                    #expect(report.reason.contains("at byte \(start)"))
                    if let copy = report.setAsidePath {
                        #expect(try fileBytes(copy) == Array(whole[start..<cut]))
                    } else {
                        #expect(whole[start..<cut].allSatisfy { $0 == 0 })
                    }
                }
                reopened.close()
            }

            try writeFile(log, Array(whole[..<(start + 5)]))
            let reopened = try openStore(directory)
            let (group, offsets) = randomCommit(using: &rng)
            _ = try reopened.commit(group: group, offsets: offsets)
            model.commit(group, offsets)
            reopened.close()
            let again = try openStore(directory)
            #expect(again.recoveryReports.isEmpty)
            #expect(contents(of: again) == model.map)
        }
    }

    enum TailDamage: Sendable, CaseIterable { case garbage, zeros }

    @Test(arguments: TailDamage.allCases)
    func garbageOrZeroFilledTailIsCut(damage: TailDamage) throws {
        var rng = SeededGenerator.logged("garbageOrZeroFilledTailIsCut(\(damage))")
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            var model = OffsetModel()
            let store = try openStore(directory)
            for _ in 0..<20 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
            }
            store.close()
            let log = try #require(try files(in: directory, suffix: ".log").first)
            let clean = try fileBytes(log)
            var tail = damage == .garbage ? rng.bytes(rng.int(1...300)) : [UInt8](repeating: 0, count: rng.int(1...5000))
            if damage == .garbage { tail[0] |= 1 }  // garbage is never all zeros
            try writeFile(log, clean + tail)

            let (recorder, logger) = RecordingLogHandler.logger()
            let reopened = try openStore(directory, logger: logger)
            #expect(contents(of: reopened) == model.map)
            let report = try #require(reopened.recoveryReports.first)
            #expect(report.validBytes == clean.count && report.truncatedBytes == tail.count)
            switch damage {
            case .garbage: #expect(try fileBytes(try #require(report.setAsidePath)) == tail)
            case .zeros: #expect(report.setAsidePath == nil && report.reason == "zero-filled tail at byte \(clean.count)")
            }
            #expect(recorder.messages(at: .warning) == ["recovered a damaged offset store file"])
            #expect(try fileBytes(log) == clean)
            let (group, offsets) = randomCommit(using: &rng)
            _ = try reopened.commit(group: group, offsets: offsets)
            model.commit(group, offsets)
            reopened.close()
            #expect(contents(of: try openStore(directory)) == model.map)
        }
    }

    /// A flipped byte in an entry in the middle: the log is cut there (a commit is never half
    /// applied), the rest is set aside, a warning is logged, and the store opens and takes commits.
    @Test func corruptEntryInTheMiddleCutsTheRestAside() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            var model = OffsetModel()
            var models = [model]
            let store = try openStore(directory)
            let log = try #require(try files(in: directory, suffix: ".log").first)
            var boundaries = [try fileBytes(log).count]
            for _ in 0..<10 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
                models.append(model)
                boundaries.append(try fileBytes(log).count)
            }
            store.close()
            let damaged = rng.int(1...8)
            var bytes = try fileBytes(log)
            let position = rng.int(boundaries[damaged]...(boundaries[damaged + 1] - 1))
            bytes[position] ^= UInt8(rng.int(1...255))
            try writeFile(log, bytes)

            let (recorder, logger) = RecordingLogHandler.logger()
            let reopened = try openStore(directory, logger: logger)
            #expect(contents(of: reopened) == models[damaged].map, "entry \(damaged) damaged at byte \(position)")
            let report = try #require(reopened.recoveryReports.first)
            #expect(report.validBytes == boundaries[damaged])
            #expect(report.truncatedBytes == bytes.count - boundaries[damaged])
            #expect(report.reason.contains("entry at byte \(boundaries[damaged])"))
            #expect(try fileBytes(try #require(report.setAsidePath)) == Array(bytes[boundaries[damaged]...]))
            #expect(recorder.messages(at: .warning) == ["recovered a damaged offset store file"])

            var after = models[damaged]
            let (group, offsets) = randomCommit(using: &rng)
            _ = try reopened.commit(group: group, offsets: offsets)
            after.commit(group, offsets)
            reopened.close()
            let again = try openStore(directory)
            #expect(again.recoveryReports.isEmpty)
            #expect(contents(of: again) == after.map)
        }
    }

    /// A log whose header is damaged is renamed aside whole; one from a newer build is refused
    /// untouched (cutting it would destroy offsets this build cannot read).
    @Test func logWithBadHeaderIsSetAsideAndNewerVersionIsRefused() throws {
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let store = try openStore(directory)
            let orders = [CommittedOffset(partition: TopicPartition(topic: "orders", partition: 0), offset: 5)]
            _ = try store.commit(group: "g", offsets: orders)
            store.close()
            let log = "\(directory)/00000000000000000000.log"
            var bytes = try fileBytes(log)

            bytes[4] = 2
            try writeFile(log, bytes)
            let error = #expect(throws: StorageError.self) { try openStore(directory) }
            #expect(error?.code == .corrupt)
            #expect(error?.message.contains("format version 2") == true)
            #expect(try fileBytes(log) == bytes)

            bytes[0] = 0x58
            bytes[4] = 1
            try writeFile(log, bytes)
            let reopened = try openStore(directory)
            #expect(reopened.groups.isEmpty)
            let report = try #require(reopened.recoveryReports.first)
            #expect(report.reason.contains("bad magic"))
            #expect(try fileBytes(try #require(report.setAsidePath)) == bytes)
            _ = try reopened.commit(group: "g", offsets: orders)
            reopened.close()
            #expect(contents(of: try openStore(directory)) == ["g": [orders[0].partition: orders[0]]])
        }
    }

    /// A corrupt snapshot is set aside and logged at error; the store still opens, with the
    /// commits of the logs after it.
    @Test func corruptSnapshotIsSetAsideAndTheStoreOpens() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let store = try openStore(directory)
            for _ in 0..<10 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
            }
            try store.compact()
            var after = OffsetModel()
            for _ in 0..<5 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
                after.commit(group, offsets)
            }
            store.close()
            let snapshot = "\(directory)/offsets.snapshot"
            var bytes = try fileBytes(snapshot)
            bytes[rng.int(24...(bytes.count - 1))] ^= 0x40
            try writeFile(snapshot, bytes)

            let (recorder, logger) = RecordingLogHandler.logger()
            let reopened = try openStore(directory, logger: logger)
            #expect(contents(of: reopened) == after.map)
            let report = try #require(reopened.recoveryReports.first)
            #expect(report.path == snapshot && report.reason.contains("corrupt snapshot"))
            #expect(try fileBytes(try #require(report.setAsidePath)) == bytes)
            #expect(recorder.messages(at: .error) == ["recovered a damaged offset store file"])
            #expect(!FileManager.default.fileExists(atPath: snapshot))
        }
    }

    // MARK: Compaction

    @Test(arguments: [0, 300, 3_000])
    func compactionKeepsTheMap(compactionBytes: Int) throws {
        var rng = SeededGenerator.logged("compactionKeepsTheMap(\(compactionBytes))")
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            var model = OffsetModel()
            let store = try openStore(directory, compactionBytes: compactionBytes)
            for _ in 0..<300 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
                try store.compactIfNeeded()
                #expect(store.logBytes <= compactionBytes)
            }
            #expect(FileManager.default.fileExists(atPath: "\(directory)/offsets.snapshot"))
            #expect(try files(in: directory, suffix: ".log").count == 1, "covered logs are deleted")
            #expect(contents(of: store) == model.map)
            store.close()

            let reopened = try openStore(directory, compactionBytes: compactionBytes)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(contents(of: reopened) == model.map)
            for _ in 0..<20 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try reopened.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
                try reopened.compactIfNeeded()
            }
            reopened.close()
            #expect(contents(of: try openStore(directory)) == model.map)
        }
    }

    enum CompactionFault: Sendable, CustomStringConvertible {
        /// The write of the new log's header (1) or of the snapshot (2), after `partial` bytes.
        case write(Int, partial: Int)
        /// The new log's fdatasync (1), directory fsync after its rename (2), the snapshot's
        /// fdatasync (3), the directory fsync after its rename (4).
        case sync(Int)

        var description: String {
            switch self {
            case .write(let number, let partial): "write \(number) after \(partial) bytes"
            case .sync(let number): "sync \(number)"
            }
        }
    }

    /// Every step of a compaction fails in turn: the files as they are then (a crash) replay to
    /// the committed map, and the store itself stays usable, so commits made after the failure
    /// survive a crash too.
    @Test(arguments: [CompactionFault.write(1, partial: 0), .write(1, partial: 3), .write(2, partial: 0), .write(2, partial: 30),
                      .sync(1), .sync(2), .sync(3), .sync(4)])
    func compactionFailingAtAnyStepLosesNothing(fault: CompactionFault) throws {
        var rng = SeededGenerator.logged("compactionFailingAtAnyStepLosesNothing(\(fault))")
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let faults = FaultInjector()
            var model = OffsetModel()
            let store = try openStore(directory, io: faults.io)
            for number in 0..<20 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
                if number == 9 { try store.compact() }
            }
            switch fault {
            case .write(let number, let partial): faults.failWrite(number: number, partialBytes: partial)
            case .sync(let number): faults.failSync(number: number)
            }
            #expect(throws: StorageError.self, "\(fault)") { try store.compact() }
            #expect(contents(of: store) == model.map)

            let crashed = "\(root)/crashed"
            try FileManager.default.copyItem(atPath: directory, toPath: crashed)
            let recovered = try openStore(crashed)
            #expect(contents(of: recovered) == model.map, "a crash right after the failure")
            #expect(try files(in: crashed, suffix: ".tmp").isEmpty)

            for _ in 0..<10 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
            }
            store.close()
            let reopened = try openStore(directory)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(contents(of: reopened) == model.map, "commits after the failed compaction")
            try reopened.compact()
            reopened.close()
            #expect(contents(of: try openStore(directory)) == model.map)
            #expect(try files(in: directory, suffix: ".log").count == 1)
        }
    }

    /// Files a crash can leave (temporary files, a log an earlier snapshot covers) are removed
    /// at open, and a covered log is not replayed over the newer snapshot.
    @Test func leftoversOfInterruptedCompactionsAreRemoved() throws {
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let orders = TopicPartition(topic: "orders", partition: 2)
            let store = try openStore(directory)
            _ = try store.commit(group: "g", offsets: [CommittedOffset(partition: orders, offset: 500)])
            let staleName = "00000000000000000000.log"
            let stale = try fileBytes("\(directory)/\(staleName)")
            try store.compact()
            _ = try store.commit(group: "g", offsets: [CommittedOffset(partition: orders, offset: 300, metadata: "rewound")])
            try store.compact()
            store.close()
            #expect(try files(in: directory, suffix: ".log") == ["\(directory)/00000000000000000002.log"])

            try writeFile("\(directory)/\(staleName)", stale)
            try writeFile("\(directory)/offsets.snapshot.tmp", [1, 2, 3])
            try writeFile("\(directory)/00000000000000000003.log.tmp", Array("SPOL".utf8))
            let reopened = try openStore(directory)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(reopened.committed(group: "g") == [CommittedOffset(partition: orders, offset: 300, metadata: "rewound")])
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
                == ["00000000000000000002.log", "offsets.snapshot"])
        }
    }

    /// Sync work handed out before a compaction still runs (its log is deleted but stays open),
    /// and sequence numbers keep growing across the switch of log.
    @Test(.timeLimit(.minutes(1)))
    func syncWorkFromBeforeACompactionStillRuns() async throws {
        try await withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let store = try openStore(directory)
            let orders = [CommittedOffset(partition: TopicPartition(topic: "orders", partition: 0), offset: 1)]
            let before = try store.commit(group: "g", offsets: orders)
            try store.compact()
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/00000000000000000000.log"))
            let after = try store.commit(group: "g", offsets: orders)
            #expect(after.endOffset > before.endOffset)

            let results = Mutex<[Int: Result<Int64, StorageError>]>([:])
            let flusher = GroupCommitFlusher<Int> { round in
                results.withLock { for (key, result) in round { $0[key] = result } }
            }
            flusher.submit(before, for: 1)
            flusher.submit(after, for: 2)
            try await waitUntil { results.withLock { $0.count == 2 } }
            flusher.shutdown()
            let (first, second) = results.withLock { ($0[1], $0[2]) }
            #expect(try first?.get() == before.endOffset)
            #expect(try second?.get() == after.endOffset)
        }
    }

    // MARK: Failures and limits

    /// A failed write (possibly after a short write) leaves memory and file as they were; the
    /// next commit works and a reopen finds nothing to cut.
    @Test(arguments: [0, 5, 40])
    func failedWriteChangesNothing(partialBytes: Int) throws {
        var rng = SeededGenerator.logged("failedWriteChangesNothing(\(partialBytes))")
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let faults = FaultInjector()
            var model = OffsetModel()
            let store = try openStore(directory, io: faults.io)
            for _ in 0..<10 {
                let (group, offsets) = randomCommit(using: &rng)
                _ = try store.commit(group: group, offsets: offsets)
                model.commit(group, offsets)
            }
            let log = try #require(try files(in: directory, suffix: ".log").first)
            let before = try fileBytes(log)

            faults.failWrite(number: 1, partialBytes: partialBytes)
            // An entry longer than any partial write, so the partial write never completes it.
            let (group, offsets) = ("billing", [CommittedOffset(partition: TopicPartition(topic: "orders", partition: 1), offset: 7,
                                                                metadata: String(repeating: "x", count: 100))])
            let error = #expect(throws: StorageError.self) { try store.commit(group: group, offsets: offsets) }
            #expect(error?.code == .io && error?.errno == FaultInjector.writeError)
            #expect(contents(of: store) == model.map)
            #expect(store.commitSequence == 10)
            #expect(try fileBytes(log) == before)

            #expect(try store.commit(group: group, offsets: offsets).endOffset == 11)
            model.commit(group, offsets)
            store.close()
            let reopened = try openStore(directory)
            #expect(reopened.recoveryReports.isEmpty)
            #expect(contents(of: reopened) == model.map)
        }
    }

    /// When the rollback fails too, the leftover past the log's end is overwritten by the next
    /// commit and what remains of it is cut by recovery.
    @Test func leftoverOfFailedRollbackIsNeverReplayed() throws {
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let faults = FaultInjector()
            let store = try openStore(directory, io: faults.io)
            let orders = TopicPartition(topic: "orders", partition: 0)
            _ = try store.commit(group: "g", offsets: [CommittedOffset(partition: orders, offset: 1)])
            faults.failWrite(number: 1, partialBytes: 500)
            faults.failTruncates(true)
            #expect(throws: StorageError.self) {
                try store.commit(group: "g", offsets: [CommittedOffset(partition: orders, offset: 2, metadata: String(repeating: "x", count: 1000))])
            }
            faults.failTruncates(false)
            _ = try store.commit(group: "g", offsets: [CommittedOffset(partition: orders, offset: 3)])
            store.close()
            let reopened = try openStore(directory)
            #expect(reopened.committed(group: "g") == [CommittedOffset(partition: orders, offset: 3)])
            #expect(reopened.recoveryReports.count == 1)
        }
    }

    enum InvalidCommit: CaseIterable, Sendable {
        case emptyGroup, longGroup, longMetadata, emptyTopic, negativePartition

        /// The commit and what its error message must say.
        var commit: (group: String, offset: CommittedOffset, message: String) {
            let orders = TopicPartition(topic: "orders", partition: 0)
            return switch self {
            case .emptyGroup: ("", CommittedOffset(partition: orders, offset: 1), "group name is 0 bytes")
            case .longGroup: (String(repeating: "é", count: 125), CommittedOffset(partition: orders, offset: 1), "group name is 250 bytes")
            case .longMetadata: ("g", CommittedOffset(partition: orders, offset: 1, metadata: String(repeating: "m", count: OffsetStore.maxMetadataBytes + 1)),
                                 "metadata of orders/0 is 4097 bytes")
            case .emptyTopic: ("g", CommittedOffset(partition: TopicPartition(topic: "", partition: 0), offset: 1), "topic name is 0 bytes")
            case .negativePartition: ("g", CommittedOffset(partition: TopicPartition(topic: "orders", partition: -1), offset: 1),
                                      "partition orders/-1 is negative")
            }
        }
    }

    @Test(arguments: InvalidCommit.allCases)
    func rejectsInvalidCommitsWithoutWriting(invalid: InvalidCommit) throws {
        let (group, offset, message) = invalid.commit
        try withTemporaryDirectory { root in
            let directory = "\(root)/@offsets"
            let store = try openStore(directory)
            let valid = CommittedOffset(partition: TopicPartition(topic: "orders", partition: 1), offset: 1)
            _ = try store.commit(group: "g", offsets: [valid])
            let log = try #require(try files(in: directory, suffix: ".log").first)
            let before = try fileBytes(log)
            let error = #expect(throws: StorageError.self) { try store.commit(group: group, offsets: [valid, offset]) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains(message) == true, "\(String(describing: error))")
            #expect(try fileBytes(log) == before)
            #expect(contents(of: store) == ["g": [valid.partition: valid]])
        }
    }

    @Test func dataDirectoryOpensTheStoreAndNeverListsItAsATopic() throws {
        try withTemporaryDirectory { root in
            let (recorder, logger) = RecordingLogHandler.logger()
            let data = try DataDirectory(path: root, logger: logger)
            let orders = CommittedOffset(partition: TopicPartition(topic: "orders", partition: 0), offset: 42, metadata: "m")
            let store = try data.openOffsetStore()
            _ = try store.commit(group: "g", offsets: [orders])
            store.close()
            #expect(Syscall.isDirectory("\(root)/@offsets"))
            #expect(try data.existingTopics().isEmpty)
            #expect(recorder.messages(at: .warning).isEmpty)
            #expect(try data.openOffsetStore().committed(group: "g") == [orders])
        }
    }
}

// MARK: Helpers

/// What the store must hold: every commit applied in order, the last one per partition winning.
private struct OffsetModel {
    var map: [String: [TopicPartition: CommittedOffset]] = [:]

    mutating func commit(_ group: String, _ offsets: [CommittedOffset]) {
        for offset in offsets { map[group, default: [:]][offset.partition] = offset }
    }
}

/// The store's map read through its public API, checking the orders it promises.
private func contents(of store: OffsetStore) -> [String: [TopicPartition: CommittedOffset]] {
    var map: [String: [TopicPartition: CommittedOffset]] = [:]
    #expect(store.groups == store.groups.sorted())
    for group in store.groups {
        let offsets = store.committed(group: group)
        #expect(!offsets.isEmpty)
        #expect(offsets.map(\.partition) == offsets.map(\.partition).sorted())
        for offset in offsets {
            #expect(store.committed(group: group, partition: offset.partition) == offset)
            map[group, default: [:]][offset.partition] = offset
        }
    }
    return map
}

/// A commit of 1–4 offsets by one of a few groups, with offsets that often go down (rewinds)
/// and metadata that is empty, text, non-ASCII (at most 18 bytes) or up to `maxMetadataBytes` long.
private func randomCommit(using rng: inout SeededGenerator, maxMetadataBytes: Int = OffsetStore.maxMetadataBytes) -> (String, [CommittedOffset]) {
    let groups = ["billing", "audit", "grüppe-ü", String(repeating: "g", count: OffsetStore.maxGroupBytes)]
    let topics = ["orders", "payments.v2", "a_b-c"]
    let offsets = (0..<rng.int(1...4)).map { _ in
        let metadata = switch rng.int(0...9) {
        case 0...3: ""
        case 4...6: "member-\(rng.int(0...999))"
        case 7, 8: "ünïcødé 🎉 \(rng.int(0...9))"
        default: String(repeating: "m", count: rng.int(0...maxMetadataBytes))
        }
        return CommittedOffset(partition: TopicPartition(topic: topics[rng.int(0...2)], partition: Int32(rng.int(0...5))),
                               offset: Int64(rng.int(0...1_000_000)), metadata: metadata)
    }
    return (groups[rng.int(0...3)], offsets)
}

private func openStore(_ directory: String, io: FileIO = .system, logger: Logger = .quiet,
                       compactionBytes: Int = OffsetStore.defaultCompactionBytes) throws -> OffsetStore {
    try OffsetStore(directory: directory, logger: logger, io: io, compactionBytes: compactionBytes)
}

/// Little-endian bytes of `value`.
private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// CRC-32C (Castagnoli, reflected 0x82F63B78), bit by bit: an implementation apart from the module's.
private func referenceCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}
