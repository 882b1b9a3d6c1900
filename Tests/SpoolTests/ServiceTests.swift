import Logging
import ServiceLifecycle
@testable import Spool
import SpoolTesting
import Testing

/// Producer and Consumer as services of a `ServiceGroup`: a graceful shutdown flushes the
/// producer and closes the consumer (its commits made, the group left, the iteration ended).
@Suite struct ServiceTests {
    @Test(.timeLimit(.minutes(1)))
    func aGracefulShutdownFlushesTheProducerAndClosesTheConsumer() async throws {
        let broker = try InProcessBroker(transport: .inproc)
        let client = try await broker.makeClient()
        defer { client.close() }
        try await client.createTopic("jobs")
        let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .seconds(60)))
        let consumer = try Consumer(client: client, group: "workers", topics: ["jobs"])
        let quiet = Logger(label: "spool.tests", factory: { _ in SwiftLogNoOpLogHandler() })
        let group = ServiceGroup(services: [producer, consumer], logger: quiet)
        let running = Task { try await group.run() }

        for number in 0..<10 { try await producer.enqueue(to: "jobs", value: [UInt8(number)]) }
        var iterator = consumer.makeAsyncIterator()
        #expect(try await client.offset(of: "jobs", .latest) == 0, "a one-minute linger holds the records")
        await group.triggerGracefulShutdown()
        try await running.value

        #expect(try await client.offset(of: "jobs", .latest) == 10, "the shutdown flushed the producer")
        let closed = await spoolError { try await producer.enqueue(to: "jobs", value: [0]) }
        #expect(closed?.code == .clientClosed)
        #expect(try await iterator.next() == nil, "the consumer's iteration ended")
        #expect(try await client.describeGroup("workers").members.isEmpty, "the consumer left its group")
    }
}
