import Foundation
import Logging
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// The idempotent producer against a real `spoold` that is killed with -9 while it publishes.
    @Suite struct ProducerCrashTests {
        /// 100,000 keyed records from one producer; the broker is killed and restarted four
        /// times meanwhile. The producer retries on its own; afterwards every record is stored
        /// exactly once and each key's records are in the order they were enqueued.
        @Test(.timeLimit(.minutes(5)))
        func aKilledBrokerNeitherLosesNorDuplicatesAnIdempotentProducersRecords() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-producer")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient(ClientConfiguration(requestTimeout: .seconds(5)))
            defer { client.close() }
            try await client.createTopic("keyed", partitions: 4)
            let producer = try Producer(client: client, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))

            let keys = 100, perKey = 1_000
            var crashRecoveries = 0
            for sequence in 0..<perKey {
                for key in 0..<keys {
                    try await producer.enqueue(to: "keyed", key: Array("k\(key)".utf8), value: Array("k\(key)-\(sequence)".utf8))
                }
                if sequence % 250 == 125 {  // four kills (at 125, 375, 625, 875), while batches are in flight
                    try await daemon.kill9()
                    try await Task.sleep(for: .milliseconds(300))
                    try await daemon.start()
                    // No clean-shutdown marker: the restart verified every segment, as after a crash.
                    if daemon.stderr.contains("every segment in full") { crashRecoveries += 1 }
                }
            }
            try await producer.flush()
            try await producer.close()
            #expect(crashRecoveries == 4, "each restart recovered from a crash")

            var byKey: [String: [Int]] = [:]
            var total = 0
            for partition in Int32(0)..<4 {
                let end = try await client.offset(of: "keyed", partition: partition, .latest)
                var offset: Int64 = 0
                while offset < end {
                    let records = try await client.fetch(from: "keyed", partition: partition, offset: offset).records
                    for record in records {
                        let value = String(decoding: record.value, as: UTF8.self)
                        let parts = value.split(separator: "-")
                        byKey[String(parts[0]), default: []].append(Int(parts[1])!)
                    }
                    total += records.count
                    offset = records.last.map { $0.offset + 1 } ?? end
                }
            }
            #expect(total == keys * perKey, "stored \(total) records for \(keys * perKey) enqueued")
            #expect(byKey.count == keys)
            let broken = byKey.filter { $0.value != Array(0..<perKey) }
            #expect(broken.isEmpty, "keys lost, duplicated or reordered: \(broken.keys.sorted().prefix(5))")
        }
    }
}
