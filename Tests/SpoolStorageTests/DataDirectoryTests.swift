import SpoolTesting
import Foundation
import Glibc
@_spi(Testing) @testable import SpoolStorage
import SpoolWire
import Testing

@Suite struct DataDirectoryTests {
    /// flock belongs to an open file description, so even a second open in the same process is
    /// refused, with the holder's pid; closing releases the lock.
    @Test func refusesSecondOpenOfSameDirectory() throws {
        try withTemporaryDirectory { root in
            let path = "\(root)/data"
            let first = try DataDirectory(path: path, logger: .quiet)
            let error = #expect(throws: StorageError.self) { try DataDirectory(path: path, logger: .quiet) }
            #expect(error?.code == .locked)
            #expect(error?.message == "data directory \(path) is in use by another spoold (pid \(getpid()))")
            #expect(String(decoding: try fileBytes("\(path)/@spoold.lock"), as: UTF8.self) == "\(getpid())\n")

            first.close()
            first.close()
            let second = try DataDirectory(path: path, logger: .quiet)
            second.close()
        }
    }

    @Test func roundTripsTopicsAndSkipsJunk() throws {
        try withTemporaryDirectory { root in
            let data = try DataDirectory(path: root, logger: .quiet)
            let orders = try TopicName("orders")
            let payments = try TopicName("payments.v2")
            try data.createTopic(orders, TopicMetadata(partitions: 3, settings: ["retention.ms": "60000"]))
            try data.createTopic(payments, TopicMetadata(partitions: 1))
            #expect(String(decoding: try fileBytes("\(root)/orders/topic.json"), as: UTF8.self) == """
                {
                  "partitions" : 3,
                  "settings" : {
                    "retention.ms" : "60000"
                  }
                }

                """)
            // The first format, without settings, still reads.
            try writeFile("\(root)/payments.v2/topic.json", Array("{\"partitions\": 1}\n".utf8))
            #expect(Syscall.isDirectory("\(root)/orders/2"))

            // Junk that must be skipped, never fatal.
            try FileManager.default.createDirectory(atPath: "\(root)/not a topic!", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: "\(root)/half-created", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: "\(root)/garbled", withIntermediateDirectories: true)
            try writeFile("\(root)/garbled/topic.json", Array("{\"partitions\": ".utf8))
            try FileManager.default.createDirectory(atPath: "\(root)/zero", withIntermediateDirectories: true)
            try writeFile("\(root)/zero/topic.json", Array("{\"partitions\": 0}".utf8))
            try writeFile("\(root)/stray-file", [1, 2, 3])
            try FileManager.default.createDirectory(atPath: "\(root)/@broker-internal", withIntermediateDirectories: true)

            let (recorder, logger) = RecordingLogHandler.logger()
            data.close()
            let reopened = try DataDirectory(path: root, logger: logger)
            #expect(try reopened.existingTopics() == [orders: TopicMetadata(partitions: 3, settings: ["retention.ms": "60000"]), payments: TopicMetadata(partitions: 1)])
            #expect(recorder.messages(at: .warning).count == 5)
        }
    }

    @Test(arguments: [Int32(0), -1, 10_001])
    func rejectsPartitionCountsOutOfRange(partitions: Int32) throws {
        try withTemporaryDirectory { root in
            let data = try DataDirectory(path: root, logger: .quiet)
            let error = #expect(throws: StorageError.self) { try data.createTopic(try TopicName("t"), TopicMetadata(partitions: partitions)) }
            #expect(error?.code == .invalidArgument)
            #expect(try data.existingTopics().isEmpty)
        }
    }

    /// A deleted topic is gone from the listing at once, its name is free, and a retired
    /// directory that a crash left behind is removed when the directory next opens.
    @Test func deletesATopicDurablyAndRemovesLeftoversAtOpen() async throws {
        let root = try TemporaryDirectory(prefix: "spool-delete-topic")
        let orders = try TopicName("orders")
        do {
            let data = try DataDirectory(path: root.path, logger: .quiet)
            try data.createTopic(orders, TopicMetadata(partitions: 2))
            let log = try data.openPartition(orders, partition: 1, configuration: LogConfiguration())
            log.close()
            try data.deleteTopic(orders)
            #expect(try data.existingTopics().isEmpty)
            #expect(!FileManager.default.fileExists(atPath: root.appending("orders")))
            #expect(throws: StorageError.self) { try data.deleteTopic(orders) }
            try data.createTopic(orders, TopicMetadata(partitions: 1))
            #expect(try data.existingTopics() == [orders: TopicMetadata(partitions: 1)])
            data.close()
        }
        // What a crash between the rename and the removal leaves: a retired tree with a topic.json.
        let leftover = root.appending("@deleted-orders-7")
        try FileManager.default.createDirectory(atPath: leftover + "/0", withIntermediateDirectories: true)
        try Data("{\"partitions\": 1}".utf8).write(to: URL(fileURLWithPath: leftover + "/topic.json"))
        let reopened = try DataDirectory(path: root.path, logger: .quiet)
        defer { reopened.close() }
        #expect(try reopened.existingTopics() == [orders: TopicMetadata(partitions: 1)])
        #expect(await eventually { !FileManager.default.fileExists(atPath: leftover) }, "the retired directory is still there")
    }

    @Test func refusesToCreateTopicTwice() throws {
        try withTemporaryDirectory { root in
            let data = try DataDirectory(path: root, logger: .quiet)
            try data.createTopic(try TopicName("t"), TopicMetadata(partitions: 2))
            let error = #expect(throws: StorageError.self) { try data.createTopic(try TopicName("t"), TopicMetadata(partitions: 4)) }
            #expect(error?.code == .alreadyExists)
            #expect(try data.existingTopics() == [try TopicName("t"): TopicMetadata(partitions: 2)])
        }
    }

    @Test func opensPartitionLogsOfExistingTopics() throws {
        var rng = SeededGenerator.logged()
        try withTemporaryDirectory { root in
            let data = try DataDirectory(path: root, logger: .quiet)
            let topic = try TopicName("orders")
            try data.createTopic(topic, TopicMetadata(partitions: 2))
            let log = try data.openPartition(topic, partition: 1, configuration: LogConfiguration())
            var model = LogModel()
            try append(makeBatch(timestamp: 0, using: &rng), to: log, model: &model)
            #expect(log.directory == "\(root)/orders/1")
            #expect(try files(in: "\(root)/orders/1", suffix: ".log") == ["\(root)/orders/1/00000000000000000000.log"])

            let missing = #expect(throws: StorageError.self) {
                try data.openPartition(try TopicName("nope"), partition: 0, configuration: LogConfiguration())
            }
            #expect(missing?.code == .notFound)
            #expect(!FileManager.default.fileExists(atPath: "\(root)/nope"))
        }
    }
}
