import Foundation
import SpoolBroker
import SpoolStorage
import SpoolTesting
import SpoolWire
import Testing

/// Retention (`retention.ms`, `retention.bytes`) and per-topic settings: created with a topic,
/// declared in the configuration, stored in `topic.json`.
@Suite struct RetentionAndSettingsTests {
    static let oldTime: Int64 = 1_700_000_000_000
    static let hour: Int64 = 3_600_000

    /// One produced batch: where it went and how big it is.
    struct Produced {
        var baseOffset: Int64
        var byteCount: Int
        var records: [Record]
    }

    /// Produces batches (at least one) with timestamps around `timestamp` until the partition has `segments` segments.
    static func produceUntil(_ h: Harness, _ topic: String = "orders", segments: Int, timestamp: Int64,
                             into produced: inout [Produced]) throws {
        for _ in 0..<10_000 {
            let (batch, records) = h.randomBatch(maxValue: 300, timestamp: timestamp)
            let ack = try h.produce(topic, batch)
            #expect(ack.baseOffset == (produced.last.map { $0.baseOffset + Int64($0.records.count) } ?? 0))
            produced.append(Produced(baseOffset: ack.baseOffset, byteCount: batch.count, records: numbered(records, from: ack.baseOffset)))
            if try h.segmentBaseOffsets(topic).count >= segments { return }
        }
        throw BrokerTestError("\(topic) never reached \(segments) segments")
    }

    // MARK: retention.ms

    /// `retention.ms` deletes the sealed segments whose newest record is older than the limit,
    /// from the front: the log then starts at a segment boundary (metadata and ListOffsets say
    /// so), a fetch below it gets `offsetOutOfRange` with the new `earliest`, the rest reads back
    /// unchanged and the files go. A second pass before `retentionCheckIntervalMilliseconds` does
    /// nothing; once due, an expired active segment still stays. Also after a restart (the
    /// newest timestamps are then recovered from the files).
    @Test(arguments: [false, true])
    func retentionTimeDeletesExpiredSealedSegmentsFromTheFront(restartFirst: Bool) async throws {
        let h = try Harness("retentionTimeDeletesExpiredSealedSegments(restart: \(restartFirst))") {
            $0.log.segmentBytes = 4096
            $0.log.segmentMilliseconds = nil
            $0.log.retentionMilliseconds = Self.hour
            $0.log.retentionBytes = nil
            $0.retentionCheckIntervalMilliseconds = 60_000
        }
        let newTime = Self.oldTime + 10 * Self.hour
        var produced: [Produced] = []
        try Self.produceUntil(h, segments: 4, timestamp: Self.oldTime, into: &produced)
        let firstNewOffset = (produced.last.map { $0.baseOffset + Int64($0.records.count) })!
        try Self.produceUntil(h, segments: try h.segmentBaseOffsets("orders").count + 2, timestamp: newTime, into: &produced)
        let sent = produced.flatMap(\.records)
        let end = Int64(sent.count)
        if restartFirst { try h.reopen() }

        let bases = try h.segmentBaseOffsets("orders")
        // The segment holding the first new record has a new newest record: it and all after it stay.
        let expectedStart = try #require(bases.last { $0 <= firstNewOffset })
        try #require(expectedStart > 0)

        h.broker.enforceRetention(now: h.now, wallClockMilliseconds: newTime + Self.hour / 2)
        let metadata = try h.call(MetadataRequest(topics: ["orders"]), MetadataResponse.self)
        #expect(metadata.topics.first?.partitions == [.init(partition: 0, logStartOffset: expectedStart, logEndOffset: end)])
        #expect(try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: .earliest), ListOffsetsResponse.self).offset == expectedStart)
        #expect(try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: .timestamp(0)), ListOffsetsResponse.self).offset
                == expectedStart)
        #expect(try h.latestOffset("orders") == end)
        for below in Set([0, expectedStart - 1, Int64(h.rng.int(0...Int(expectedStart - 1)))]) {
            let error = try h.expectError(FetchRequest(topic: "orders", partition: 0, offset: below), code: .offsetOutOfRange)
            #expect(error.details["earliest"] == expectedStart, "fetch at \(below): \(error.details)")
            #expect(error.details["latest"] == end)
        }
        #expect(try h.fetchAll("orders", from: expectedStart) == Array(sent[Int(expectedStart)...]), "the rest is unchanged")
        #expect(try h.segmentBaseOffsets("orders") == bases.filter { $0 >= expectedStart })
        #expect(h.broker.nextDeadline == h.now + 60_000, "the next check is scheduled")
        let directory = h.partitionDirectory("orders")
        #expect(await eventually { (try? FileManager.default.contentsOfDirectory(atPath: directory))?.allSatisfy { !$0.hasSuffix(".deleted") } == true },
                "the deleted files are unlinked")
        let remaining = try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasSuffix(".deleted") }
        for base in bases where base < expectedStart {
            // A key-index file may keep its name (its first offset) while it covers records kept.
            #expect(!remaining.contains { $0.hasPrefix(String(format: "%020lld", base)) && !$0.hasSuffix(".keys") }, "files of segment \(base) remain")
        }

        // Before the interval passes, even a far later clock deletes nothing.
        let farFuture = newTime + 1000 * Self.hour
        h.broker.enforceRetention(now: h.now + 59_999, wallClockMilliseconds: farFuture)
        #expect(try h.segmentBaseOffsets("orders") == bases.filter { $0 >= expectedStart })
        #expect(try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: .earliest), ListOffsetsResponse.self).offset == expectedStart)

        // Once due, every sealed segment goes, but never the active one.
        let activeBase = try #require(bases.last)
        h.broker.enforceRetention(now: h.now + 60_000, wallClockMilliseconds: farFuture)
        #expect(try h.segmentBaseOffsets("orders") == [activeBase])
        #expect(try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: .earliest), ListOffsetsResponse.self).offset == activeBase)
        #expect(try h.fetchAll("orders", from: activeBase) == Array(sent[Int(activeBase)...]))
        #expect(try h.latestOffset("orders") == end)

        // Appends go on; a restart keeps the new start.
        let (batch, records) = h.randomBatch(timestamp: newTime)
        #expect(try h.produce("orders", batch).baseOffset == end)
        try h.reopen()
        let after = try h.call(MetadataRequest(topics: ["orders"]), MetadataResponse.self)
        #expect(after.topics.first?.partitions == [.init(partition: 0, logStartOffset: activeBase, logEndOffset: end + Int64(records.count))])
        #expect(try h.fetchAll("orders", from: activeBase) == Array(sent[Int(activeBase)...]) + numbered(records, from: end))
    }

    // MARK: retention.bytes

    /// `retention.bytes` deletes the oldest sealed segments while the rest still holds at least
    /// that many bytes: afterwards the log holds at least `retention.bytes` (in memory and in the
    /// files), one more deletion would have gone below it (unless only the active segment is
    /// left), and the remaining records read back unchanged.
    @Test func retentionBytesKeepsAtLeastThatManyBytes() throws {
        var seedSource = SeededGenerator.logged()
        let limit = Int64(seedSource.int(4096...16_384))
        let h = try Harness {
            $0.log.segmentBytes = 4096
            $0.log.segmentMilliseconds = nil
            $0.log.retentionMilliseconds = nil
            $0.log.retentionBytes = limit
        }
        var produced: [Produced] = []
        try Self.produceUntil(h, segments: 9, timestamp: Self.oldTime, into: &produced)
        let sent = produced.flatMap(\.records)
        let bases = try h.segmentBaseOffsets("orders")
        // Each segment's size: the batches that went to it.
        func segmentSize(_ base: Int64) -> Int64 {
            let next = bases.first { $0 > base } ?? .max
            return Int64(produced.filter { $0.baseOffset >= base && $0.baseOffset < next }.map(\.byteCount).reduce(0, +))
        }
        let total = bases.map(segmentSize).reduce(0, +)
        try #require(total - segmentSize(bases[0]) >= limit, "the test needs at least one segment to go (limit \(limit))")

        h.broker.enforceRetention(now: h.now, wallClockMilliseconds: Self.oldTime)
        let start = try h.call(ListOffsetsRequest(topic: "orders", partition: 0, spec: .earliest), ListOffsetsResponse.self).offset
        #expect(bases.contains(start), "the log starts at a segment boundary: \(start)")
        #expect(start > 0)
        let kept = bases.filter { $0 >= start }
        #expect(try h.segmentBaseOffsets("orders") == kept)
        let keptBytes = kept.map(segmentSize).reduce(0, +)
        #expect(keptBytes >= limit, "kept \(keptBytes) bytes, retention.bytes is \(limit)")
        if kept.count > 1 {
            #expect(keptBytes - segmentSize(kept[0]) < limit, "segment \(kept[0]) could have gone too (limit \(limit))")
        }
        let directory = h.partitionDirectory("orders")
        let fileBytes = try kept.map { base -> Int64 in
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(directory)/\(String(format: "%020lld", base)).log")
            return (attributes[.size] as? NSNumber)?.int64Value ?? 0
        }.reduce(0, +)
        #expect(fileBytes >= limit, "the .log files hold \(fileBytes) bytes, retention.bytes is \(limit)")
        #expect(try h.fetchAll("orders", from: start) == Array(sent[Int(start)...]))
        #expect(try h.latestOffset("orders") == Int64(sent.count))
    }

    /// Under `fsync: always` retention never deletes records consumers cannot see yet (appended,
    /// not synced; Kafka likewise deletes only below the high watermark): the log never starts
    /// after its visible end, a consumer at the latest offset never gets `offsetOutOfRange`, and
    /// when the sync then fails the partition goes on taking produces (the log can be cut back).
    @Test func retentionNeverDeletesRecordsNotYetVisible() throws {
        let h = try Harness(fsync: .always) {
            $0.log.segmentBytes = 4096
            $0.log.segmentMilliseconds = nil
            $0.log.retentionMilliseconds = Self.hour
        }
        // Records with old timestamps (a replay of history, say), waiting for their sync, over two segments.
        var waiting: [UInt64] = []
        for _ in 0..<200 {
            let (batch, _) = h.randomBatch(maxValue: 600, timestamp: Self.oldTime)
            let (id, replies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
            #expect(replies.isEmpty)
            waiting.append(id)
            if try h.segmentBaseOffsets("orders").count >= 2 { break }
        }
        try #require(try h.segmentBaseOffsets("orders").count >= 2)

        h.broker.enforceRetention(now: h.now, wallClockMilliseconds: Self.oldTime + 10 * Self.hour)
        let partition = try #require(try h.call(MetadataRequest(topics: ["orders"]), MetadataResponse.self).topics.first?.partitions.first)
        #expect(partition.logStartOffset <= partition.logEndOffset, "the log starts after its visible end: \(partition)")
        let latest = try h.latestOffset("orders")
        let (id, replies) = try h.request(FetchRequest(topic: "orders", partition: 0, offset: latest))
        let reply = try #require(replies.only)
        #expect(reply.header.correlationID == id)
        #expect(reply.header.errorCode == .none, "a fetch at the latest offset \(latest) failed: \(String(describing: try? reply.error().message))")

        // The sync fails: the waiting produces get errors, and the partition still takes produces.
        let (key, _) = try #require(h.broker.takeSyncWork(now: h.now).only)
        let failure = StorageError(.io, "fdatasync failed: Input/output error", errno: 5)
        let failed = try Reply.decode(h.broker.syncCompleted(key, result: .failure(failure), now: h.now))
        #expect(failed.map(\.header.correlationID) == waiting)
        let (batch, records) = h.randomBatch(timestamp: Self.oldTime + 10 * Self.hour)
        let (retryID, retryReplies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: batch)
        if let refused = retryReplies.first {
            Issue.record("the partition refused a produce after the failed sync: \(String(describing: try? refused.error().message))")
            return
        }
        var acks: [Reply] = []
        for (key, work) in h.broker.takeSyncWork(now: h.now) {
            acks += try Reply.decode(h.broker.syncCompleted(key, result: .success(work.endOffset), now: h.now))
        }
        let ack = try #require(acks.first { $0.header.correlationID == retryID })
        #expect(try ack.body(ProduceResponse.self) == ProduceResponse(partition: 0, baseOffset: 0, durability: .onDisk))
        #expect(try h.fetchAll("orders") == numbered(records, from: 0))
    }

    /// A topic's own `retention.ms` and `segment.bytes` override the broker's: with the same
    /// data and clock, a topic with a short retention loses its old segments, a topic with
    /// `retention.ms: -1` keeps everything, and a topic on the broker's defaults (7 days) keeps
    /// its single segment (1 GiB segments never roll here).
    @Test func topicRetentionSettingsOverrideTheBrokers() throws {
        let h = try Harness()
        _ = try h.call(CreateTopicRequest(name: "short", partitions: 1, settings: ["retention.ms": "3600000", "segment.bytes": "4096"]),
                       CreateTopicResponse.self)
        _ = try h.call(CreateTopicRequest(name: "forever", partitions: 1, settings: ["retention.ms": "-1", "segment.bytes": "4_096"]),
                       CreateTopicResponse.self)
        var short: [Produced] = [], forever: [Produced] = [], plain: [Produced] = []
        try Self.produceUntil(h, "short", segments: 3, timestamp: Self.oldTime, into: &short)
        try Self.produceUntil(h, "forever", segments: 3, timestamp: Self.oldTime, into: &forever)
        for _ in 0..<5 {
            let (batch, records) = h.randomBatch(timestamp: Self.oldTime)
            let base = try h.produce("plain", batch).baseOffset
            plain.append(Produced(baseOffset: base, byteCount: batch.count, records: numbered(records, from: base)))
        }
        let shortBases = try h.segmentBaseOffsets("short")
        let foreverBases = try h.segmentBaseOffsets("forever")
        #expect(try h.segmentBaseOffsets("plain") == [0])

        h.broker.enforceRetention(now: h.now, wallClockMilliseconds: Self.oldTime + 365 * 24 * Self.hour)
        let metadata = try h.call(MetadataRequest(topics: ["short", "forever", "plain"]), MetadataResponse.self)
        #expect(metadata.topics.map { $0.partitions.first?.logStartOffset } == [shortBases.last, 0, 0])
        #expect(try h.segmentBaseOffsets("short") == [shortBases.last!])
        #expect(try h.segmentBaseOffsets("forever") == foreverBases)
        #expect(try h.fetchAll("forever") == forever.flatMap(\.records))
        #expect(try h.fetchAll("plain") == plain.flatMap(\.records))
        #expect(try h.fetchAll("short", from: shortBases.last!) == short.flatMap(\.records).filter { $0.offset >= shortBases.last! })
    }

    // MARK: Topic settings

    /// A create-topic request with an unknown setting or a bad value is refused with
    /// `invalidRequest` naming the key, and creates nothing: no topic in metadata, no directory,
    /// and the name can still be created properly.
    @Test(arguments: [
        (["retention.msx": "5"], "retention.msx"),
        (["Retention.ms": "5"], "Retention.ms"),
        (["retention.ms": "soon"], "retention.ms"),
        (["retention.ms": "0"], "retention.ms"),
        (["retention.ms": "-2"], "retention.ms"),
        (["retention.bytes": "lots"], "retention.bytes"),
        (["retention.bytes": "-5"], "retention.bytes"),
        (["segment.bytes": "4095"], "segment.bytes"),
        (["segment.ms": "1.5"], "segment.ms"),
        (["index.interval.bytes": ""], "index.interval.bytes"),
        (["fsync": "sometimes"], "fsync"),
        (["fsync": "Always"], "fsync"),
        (["fsync.interval.ms": "0"], "fsync.interval.ms"),
        (["fsync": "never", "segment.bytes": "1e9"], "segment.bytes"),
    ])
    func rejectsABadTopicSettingAndCreatesNothing(settings: [String: String], key: String) throws {
        let h = try Harness("rejectsABadTopicSetting(\(settings))")
        let error = try h.expectError(CreateTopicRequest(name: "orders", partitions: 2, settings: settings), code: .invalidRequest)
        #expect(error.message.contains(key), "\(error.message)")
        let metadata = try h.call(MetadataRequest(topics: ["orders"]), MetadataResponse.self)
        #expect(metadata.topics.map(\.errorCode) == [.unknownTopic])
        let entries = try FileManager.default.contentsOfDirectory(atPath: h.configuration.dataDirectory)
        #expect(entries.filter { !$0.hasPrefix("@") }.isEmpty, "\(entries)")
        #expect(try h.call(CreateTopicRequest(name: "orders", partitions: 2), CreateTopicResponse.self)
                == CreateTopicResponse(name: "orders", partitions: 2))
    }

    /// A topic created with `fsync: never` on a broker whose default is `always` acknowledges at
    /// once with durability `pageCache` (and consumers see the record at once), while a topic on
    /// the default waits for its sync; the setting is stored in `topic.json` and survives a restart.
    @Test func aTopicsFsyncSettingOverridesTheBrokersAndSurvivesARestart() throws {
        let h = try Harness(fsync: .always)
        _ = try h.call(CreateTopicRequest(name: "fast", partitions: 1, settings: ["fsync": "never"]), CreateTopicResponse.self)
        var fast: [Record] = []
        func produceFast() throws {
            let (batch, records) = h.randomBatch()
            let (id, replies) = try h.request(ProduceRequest(topic: "fast", partition: 0), batch: batch)
            let reply = try #require(replies.only, "fsync: never acknowledges at once")
            #expect(reply.header.correlationID == id)
            #expect(try reply.body(ProduceResponse.self) == ProduceResponse(partition: 0, baseOffset: Int64(fast.count), durability: .pageCache))
            fast += numbered(records, from: Int64(fast.count))
        }
        try produceFast()
        #expect(try h.fetchAll("fast") == fast, "consumers see it at once")

        let (ordersBatch, ordersRecords) = h.randomBatch()
        let (ordersID, ordersReplies) = try h.request(ProduceRequest(topic: "orders", partition: 0), batch: ordersBatch)
        #expect(ordersReplies.isEmpty, "the broker's default, always, waits for the sync")
        #expect(try h.latestOffset("orders") == 0)
        let work = h.broker.takeSyncWork(now: h.now)
        #expect(work.map(\.0.subject) == [.partition(PartitionKey(topic: try TopicName("orders"), partition: 0))], "a fsync: never topic gets no sync work")
        var acks: [Reply] = []
        for (key, item) in work { acks += try Reply.decode(h.broker.syncCompleted(key, result: .success(item.endOffset), now: h.now)) }
        #expect(acks.map(\.header.correlationID) == [ordersID])
        #expect(try acks.first?.body(ProduceResponse.self).durability == .onDisk)

        let stored = try topicMetadata(h, "fast")
        #expect(stored == TopicMetadata(partitions: 1, settings: ["fsync": "never"]))
        try h.reopen()
        #expect(try topicMetadata(h, "fast") == stored)
        try produceFast()
        #expect(try h.fetchAll("fast") == fast)
        #expect(try h.fetchAll("orders") == numbered(ordersRecords, from: 0))
    }

    /// Declared topics: at start a missing one is created with its partitions and settings; on a
    /// later start with another declaration, the disk's partition count wins and the declared
    /// settings replace the stored ones (not merged); with the declaration gone, the stored
    /// settings stay.
    @Test func declaredTopicsAreCreatedAndTheirSettingsReplaceTheStoredOnes() throws {
        let orders = try TopicName("orders")
        let h = try Harness(fsync: .always) {
            $0.declaredTopics = [orders: TopicMetadata(partitions: 3, settings: ["fsync": "never", "retention.ms": "86400000"])]
        }
        let metadata = try h.call(MetadataRequest(), MetadataResponse.self)
        #expect(metadata.topics == [.init(name: "orders", partitions: (0..<3).map { .init(partition: $0, logStartOffset: 0, logEndOffset: 0) })])
        #expect(try topicMetadata(h, "orders") == TopicMetadata(partitions: 3, settings: ["fsync": "never", "retention.ms": "86400000"]))
        let (batch, records) = h.randomBatch()
        let (_, replies) = try h.request(ProduceRequest(topic: "orders", partition: 2), batch: batch)
        #expect(try replies.only?.body(ProduceResponse.self) == ProduceResponse(partition: 2, baseOffset: 0, durability: .pageCache),
                "the declared fsync: never applies")

        try h.reopen { $0.declaredTopics = [orders: TopicMetadata(partitions: 5, settings: ["retention.ms": "-1"])] }
        let after = try h.call(MetadataRequest(), MetadataResponse.self)
        #expect(after.topics.first?.partitions.count == 3, "partitions never change: the disk's count wins")
        #expect(try topicMetadata(h, "orders") == TopicMetadata(partitions: 3, settings: ["retention.ms": "-1"]))
        #expect(try h.fetchAll("orders", 2) == numbered(records, from: 0))
        // fsync: never is gone with the old settings: the broker's always applies again.
        let ack = try h.produce("orders", 1, h.randomBatch().0)
        #expect(ack == ProduceResponse(partition: 1, baseOffset: 0, durability: .onDisk))

        try h.reopen { $0.declaredTopics = [:] }
        #expect(try topicMetadata(h, "orders") == TopicMetadata(partitions: 3, settings: ["retention.ms": "-1"]))
        #expect(try h.call(MetadataRequest(), MetadataResponse.self).topics.first?.partitions.count == 3)
    }

    /// A declared topic with a bad setting stops the broker from opening, naming the key, and
    /// creates nothing; the directory is not left locked.
    @Test func aDeclaredTopicWithABadSettingStopsTheBrokerFromOpening() throws {
        let directory = try TemporaryDirectory(prefix: "spool-broker-tests")
        var configuration = BrokerConfiguration(dataDirectory: directory.appending("data"))
        configuration.declaredTopics = [try TopicName("orders"): TopicMetadata(partitions: 2, settings: ["retention.ms": "soon"])]
        do {
            let broker = try Broker(configuration: configuration, logger: Harness.logger)
            _ = broker.close()
            Issue.record("a broker opened with a bad declared setting")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("retention.ms"), "\(error.message)")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(configuration.dataDirectory)/orders"))
        configuration.declaredTopics = [:]
        let broker = try Broker(configuration: configuration, logger: Harness.logger)
        _ = broker.close()
    }
}

/// `<data>/<topic>/topic.json`, decoded.
func topicMetadata(_ h: Harness, _ topic: String) throws -> TopicMetadata {
    let data = try Data(contentsOf: URL(fileURLWithPath: "\(h.configuration.dataDirectory)/\(topic)/topic.json"))
    return try JSONDecoder().decode(TopicMetadata.self, from: data)
}
