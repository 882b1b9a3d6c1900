import Foundation
import Spool
import SpoolTesting
import Testing

/// Clients come and go while brokers come and go; none of it may wedge the process-wide
/// ZeroMQ context that every client shares.
@Suite struct ClientLifecycleTests {
    @Test(.timeLimit(.minutes(2)))
    func closingClientsWhileBrokersComeAndGoKeepsNewClientsWorking() async throws {
        // Clients that give up on a refused port, closed while ZeroMQ keeps retrying.
        let port = try freeLoopbackPort()
        for _ in 0..<100 {
            let error = await spoolError {
                _ = try await SpoolClient(endpoint: "tcp://127.0.0.1:\(port)", configuration: ClientConfiguration(connectTimeout: .seconds(5)))
            }
            #expect(error?.code == .connectionFailed)
        }
        // Clients closed just before, or still open when, their broker stops.
        for _ in 0..<20 {
            let broker = try InProcessBroker(transport: .tcp)
            var clients: [SpoolClient] = []
            for _ in 0..<4 { clients.append(try await broker.makeClient()) }
            try await clients[0].publish(to: "churn", value: [1])
            clients[0].close()
            clients[1].close()
            await broker.stop()
            for client in clients { client.close() }
        }
        // A new broker and client still talk.
        try await withBroker(.tcp) { broker in
            let client = try await broker.makeClient(configuration: ClientConfiguration(requestTimeout: .seconds(10), connectTimeout: .seconds(10)))
            defer { client.close() }
            #expect(try await client.publish(to: "alive", value: [1]).baseOffset == 0)
        }
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient(configuration: ClientConfiguration(requestTimeout: .seconds(10), connectTimeout: .seconds(10)))
            defer { client.close() }
            #expect(try await client.publish(to: "alive", value: [1]).baseOffset == 0)
        }
    }
}
