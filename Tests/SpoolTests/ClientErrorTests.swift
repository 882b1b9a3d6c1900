import Foundation
import Spool
import SpoolTesting
import Testing

/// Every failure a user can provoke ends in one ``SpoolError`` with the right code and a message.
@Suite struct ClientErrorTests {
    static let invalidTopicNames = ["", ".", "..", "a/b", "../etc", "with space", "ünï", "@spoold.lock", String(repeating: "x", count: 250),
                                    String(repeating: "y", count: 300)]

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func invalidTopicNamesAreRejectedAsFatal(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            for name in Self.invalidTopicNames {
                var errors: [SpoolError?] = []
                errors.append(await spoolError { try await client.publish(to: name, value: [1]) })
                errors.append(await spoolError { try await client.publish(to: name, partition: 0, records: [OutgoingRecord(value: [1])]) })
                errors.append(await spoolError { _ = try await client.fetch(from: name, offset: 0) })
                errors.append(await spoolError { _ = try await client.offset(of: name, .latest) })
                errors.append(await spoolError { try await client.createTopic(name) })
                errors.append(await spoolError { for try await _ in client.records(from: name) {} })
                for error in errors {
                    let error = try #require(error)
                    #expect(error.code == .invalidTopicName, "\(name.prefix(20)): \(error)")
                    #expect(error.isFatal && !error.isRetriable)
                    #expect(!error.message.isEmpty)
                }
            }
            #expect(try await client.topics().isEmpty, "an invalid name created a topic")
            // The longest valid name works.
            let longest = String(repeating: "z", count: 249)
            #expect(try await client.publish(to: longest, value: [1]).baseOffset == 0)
            #expect(try await client.topics().map(\.name) == [longest])
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func recordsOverTheClientLimitAreRejectedBeforeSending(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let small = try await broker.makeClient(configuration: ClientConfiguration(maxBatchBytes: 1024))
            defer { small.close() }
            let tooLarge = try #require(await spoolError { try await small.publish(to: "limits", value: Array(repeating: 7, count: 2000)) })
            #expect(tooLarge.code == .recordTooLarge && tooLarge.isFatal)
            #expect(tooLarge.message.contains("1024"), "\(tooLarge)")
            let batch = (0..<20).map { _ in OutgoingRecord(value: Array(repeating: 1, count: 100)) }
            #expect(await spoolError { try await small.publish(to: "limits", records: batch) }?.code == .recordTooLarge)

            let standard = try await broker.makeClient()
            defer { standard.close() }
            let huge = try #require(await spoolError { try await standard.publish(to: "limits", value: Array(repeating: 0xAB, count: 2 << 20)) })
            #expect(huge.code == .recordTooLarge)
            #expect(try await standard.topics(["limits"]).first?.partitions.first?.latestOffset ?? 0 == 0, "a rejected record was stored")
            #expect(try await standard.publish(to: "limits", value: Array(repeating: 1, count: 1000)).baseOffset == 0)
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func recordsOverTheBrokerLimitAreRejectedByTheBroker(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport, configure: {
            $0.broker.maxBatchBytes = 2048
            $0.broker.maxRecordBytes = 1000
        }) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let batchError = try #require(await spoolError { try await client.publish(to: "strict", value: Array(repeating: 1, count: 4000)) })
            #expect(batchError.code == .recordTooLarge && batchError.isFatal)
            #expect(batchError.message.contains("2048"), "\(batchError)")
            let recordError = try #require(await spoolError { try await client.publish(to: "strict", value: Array(repeating: 2, count: 1500)) })
            #expect(recordError.code == .recordTooLarge, "\(recordError)")
            #expect(try await client.offset(of: "strict", .latest) == 0, "a rejected batch was stored")
            // Two records under the record limit in one batch under the batch limit are fine.
            let ok = try await client.publish(to: "strict", records: [OutgoingRecord(value: Array(repeating: 3, count: 600)),
                                                                      OutgoingRecord(value: Array(repeating: 4, count: 600))])
            #expect(ok.baseOffset == 0 && ok.count == 2)
            #expect(try await client.readToEnd(of: "strict").map(\.value.count) == [600, 600])
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func offsetsOutsideTheLogAreOutOfRangeWithDetails(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            try await client.publish(to: "ranged", records: (0..<10).map { OutgoingRecord(value: [UInt8($0)]) })
            for offset: Int64 in [-1, 11, 1_000_000] {
                let error = try #require(await spoolError { _ = try await client.fetch(from: "ranged", offset: offset) })
                #expect(error.code == .offsetOutOfRange, "offset \(offset): \(error)")
                #expect(error.details["earliest"] == 0)
                #expect(error.details["latest"] == 10)
                #expect(!error.isRetriable)
            }
            let atEnd = try await client.fetch(from: "ranged", offset: 10)
            #expect(atEnd.records.isEmpty && atEnd.logEndOffset == 10)
            let streamError = try #require(await spoolError { for try await _ in client.records(from: "ranged", startingAt: .offset(50)) {} })
            #expect(streamError.code == .offsetOutOfRange)
            #expect(streamError.details["latest"] == 10)
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func creatingATopicTwiceFails(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            try await client.createTopic("twice", partitions: 3)
            let error = try #require(await spoolError { try await client.createTopic("twice", partitions: 3) })
            #expect(error.code == .topicAlreadyExists, "\(error)")
            #expect(error.message.contains("twice"))
            try await client.publish(to: "auto", value: [1])
            #expect(await spoolError { try await client.createTopic("auto") }?.code == .topicAlreadyExists)
            #expect(try await client.topics(["twice"]).first?.partitions.count == 3)
            let zero = try #require(await spoolError { try await client.createTopic("zero", partitions: 0) })
            #expect(zero.code != .topicAlreadyExists)
            #expect(try await client.topics(["zero"]).isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func connectingToAClosedPortFailsAsRefused() async throws {
        let port = try freeLoopbackPort()
        // A generous connect timeout: the refusal, not the timeout, must end the attempt.
        let error = try #require(await spoolError {
            _ = try await SpoolClient(endpoint: "tcp://127.0.0.1:\(port)", configuration: ClientConfiguration(connectTimeout: .seconds(40)))
        })
        #expect(error.code == .connectionFailed, "\(error)")
        #expect(error.isRetriable)
        #expect(!error.message.contains("no answer"), "the attempt ran into the connect timeout instead of failing on the refusal: \(error)")
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func closedClientFailsEveryCallAsClientClosed(transport: InProcessBroker.Transport) async throws {
        try await withBroker(transport) { broker in
            let client = try await broker.makeClient(configuration: ClientConfiguration(fetchMaxWait: .seconds(20)))
            try await client.createTopic("closing")
            // A long poll waiting when the client closes fails too.
            let waiting = Task { try await client.fetch(from: "closing", offset: 0, maxWait: .seconds(20)) }
            try await Task.sleep(for: .milliseconds(200))
            client.close()
            client.close()
            let parked = await waiting.result
            switch parked {
            case .success(let result): #expect(result.records.isEmpty, "the parked fetch returned records from an empty topic")
            case .failure(let error): #expect((error as? SpoolError)?.code == .clientClosed, "\(error)")
            }
            let error = try #require(await spoolError { try await client.publish(to: "closing", value: [1]) })
            #expect(error.code == .clientClosed && error.isFatal)
            #expect(await spoolError { _ = try await client.topics() }?.code == .clientClosed)
            #expect(await spoolError { for try await _ in client.records(from: "closing") {} }?.code == .clientClosed)
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: InProcessBroker.Transport.allCases)
    func cancellingABlockedRecordsLoopEndsIt(transport: InProcessBroker.Transport) async throws {
        // Fetches may park for ten minutes: only cancellation can end the loop within the time limit.
        try await withBroker(transport, configure: { $0.broker.maxFetchWaitMilliseconds = 600_000 }) { broker in
            let client = try await broker.makeClient(configuration: ClientConfiguration(requestTimeout: .seconds(600), fetchMaxWait: .seconds(600)))
            defer { client.close() }
            try await client.publish(to: "quiet", value: [1])
            let seen = RecordCollector()
            let consumer = Task {
                for try await record in client.records(from: "quiet", startingAt: .earliest) { seen.append(record) }
            }
            #expect(await eventually { seen.count == 1 })
            try await Task.sleep(for: .milliseconds(200))  // let the next fetch park
            consumer.cancel()
            let result = await consumer.result
            switch result {
            case .success: break  // the loop ended
            case .failure(let error): #expect(error is CancellationError, "\(error)")
            }
            // The client is still usable afterwards.
            #expect(try await client.publish(to: "quiet", value: [2]).baseOffset == 1)
        }
    }
}
