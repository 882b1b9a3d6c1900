import Foundation
import Spool
import SpoolTesting
import Testing

/// A record stream outlives broker restarts: no gap, no duplicate, in order.
@Suite struct ClientRestartTests {
    @Test(.timeLimit(.minutes(3)), arguments: InProcessBroker.Transport.allCases)
    func recordsStreamSurvivesBrokerRestarts(transport: InProcessBroker.Transport) async throws {
        var broker = try InProcessBroker(transport: transport)
        let consumerClient: SpoolClient
        do {
            consumerClient = try await broker.makeClient(configuration: ClientConfiguration(requestTimeout: .seconds(5), fetchMaxWait: .milliseconds(500)))
        } catch {
            await broker.stop()
            throw error
        }
        let topic = "restarts"
        let rounds = 3, perRound = 100
        let total = rounds * perRound
        let collected = RecordCollector()
        try await consumerClient.createTopic(topic)  // reading never creates a topic
        let consumer = Task {
            for try await record in consumerClient.records(from: topic, startingAt: .earliest) {
                collected.append(record)
                if collected.count == total { break }
            }
        }
        var published: [String] = []
        do {
            for round in 0..<rounds {
                if round > 0 { broker = try await broker.restart() }
                // A fresh publisher each round, so no publish is ever retried (and possibly doubled).
                let publisher = try await broker.makeClient()
                defer { publisher.close() }
                for batch in 0..<10 {
                    let values = (0..<perRound / 10).map { "round-\(round)-batch-\(batch)-\($0)" }
                    let result = try await publisher.publish(to: topic, records: values.map { OutgoingRecord(value: Array($0.utf8)) })
                    #expect(result.baseOffset == Int64(published.count))
                    published += values
                }
                let expected = published.count
                try #require(await eventually(timeout: .seconds(40)) { collected.count >= expected },
                             "round \(round): the stream has \(collected.count) of \(expected) records")
            }
            let ended = await consumer.result
            if case .failure(let error) = ended { Issue.record("the stream failed: \(error)") }
        } catch {
            consumer.cancel()
            consumerClient.close()
            await broker.stop()
            throw error
        }
        consumer.cancel()
        let records = collected.records
        #expect(records.map(\.offset) == Array(0..<Int64(total)), "gaps, duplicates or reordering across restarts")
        #expect(records.map { String(decoding: $0.value, as: UTF8.self) } == published)
        #expect(try await consumerClient.offset(of: topic, .latest) == Int64(total), "a publish was stored twice")
        consumerClient.close()
        await broker.stop()
    }
}
