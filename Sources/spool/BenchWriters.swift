import ArgumentParser
import BenchmarkSupport
import Foundation
import Spool
import Synchronization

/// `spool bench writers`: conditional appends under contention, as event-store writers make them.
struct BenchWriters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "writers",
        abstract: "Conditional appends under contention: --writers clients append versions of one key, each expecting the last one.",
        discussion: """
            Each writer (its own connection and idempotent Producer, linger 0) reads the key's \
            last offset, then appends "NAME-W N after L" only if the key's last record is still at \
            L; on a key conflict it takes the current last offset from the error and tries again, \
            until it has written --versions versions. A broker that restarts meanwhile is waited \
            for: a write whose outcome is unknown (the delivery timed out) is looked up in the \
            key's history before it is tried again, so no version is written twice. Several \
            processes may run at once on one key (give each its own --name).

            Prints versions written per second, conflicts per version, and the p50 and p99 of \
            one successful append (conflicts and retries included). The topic is created with \
            one partition if it does not exist and left on the broker.

            Examples:
              spool bench writers --writers 4 --versions 500
              spool bench writers --topic accounts --key account-1 --name host-a &
              spool bench writers --topic accounts --key account-1 --name host-b
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Topic to write (default: a fresh bench-<random>-writers).")
    var topic: String?

    @Option(help: "The key every writer appends to.")
    var key = "aggregate-1"

    @Option(help: "Concurrent writers in this process.")
    var writers = 4

    @Option(help: "Versions each writer appends.")
    var versions = 200

    @Option(help: "Names this process's writers: NAME-0, NAME-1, ….")
    var name = "writer"

    @Option(help: ArgumentHelp("How long a writer waits for an unreachable broker before it gives up.", valueName: "seconds"))
    var patience: Double = 60

    func validate() throws {
        guard writers >= 1, versions >= 1 else { throw ValidationError("--writers and --versions must be at least 1") }
        guard patience > 0, patience.isFinite else { throw ValidationError("--patience must be a positive number of seconds") }
        if let topic { try reportingNameErrors(topic) }
    }

    func run() async throws {
        let topic = self.topic ?? "bench-\(UInt32.random(in: 0...UInt32.max))-writers"
        let setup = try await connection.connect(for: topic)
        defer { setup.close() }
        try await reportingErrors {
            if try await setup.topics([topic]).isEmpty {
                do {
                    try await setup.createTopic(topic)
                } catch {
                    if (error as? SpoolError)?.code != .topicAlreadyExists { throw error }
                }
            }
            let clock = ContinuousClock()
            let start = clock.now
            let results = try await withThrowingTaskGroup(of: WriterResult.self) { group in
                for number in 0..<writers {
                    group.addTask { try await self.write(topic: topic, writer: "\(self.name)-\(number)") }
                }
                var results: [WriterResult] = []
                for try await result in group { results.append(result) }
                return results
            }
            let seconds = (clock.now - start).seconds
            let latencies = results.flatMap(\.latencies).sorted()
            let written = latencies.count
            let conflicts = results.reduce(0) { $0 + $1.conflicts }
            let inDoubt = results.reduce(0) { $0 + $1.inDoubt }
            func percentile(_ fraction: Double) -> String {
                String(format: "%.2f ms", latencies[min(latencies.count - 1, Int(Double(latencies.count) * fraction))] * 1e3)
            }
            print("""
                | writers | versions | seconds | versions/s | conflicts per version | in doubt | append p50 | append p99 |
                |---:|---:|---:|---:|---:|---:|---:|---:|
                | \(writers) | \(written) | \(String(format: "%.2f", seconds)) | \(String(format: "%.0f", Double(written) / seconds)) \
                | \(String(format: "%.2f", Double(conflicts) / Double(written))) | \(inDoubt) | \(percentile(0.5)) | \(percentile(0.99)) |
                """)
            Terminal.writeError("wrote \(written) versions of \(key) in \(topic) (\(conflicts) conflicts, \(inDoubt) writes in doubt looked up)\n")
        }
    }

    /// What one writer did.
    struct WriterResult: Sendable {
        var latencies: [Double] = []
        var conflicts = 0
        var inDoubt = 0
    }

    /// One writer's loop: read the last offset, append conditionally, on a conflict take the
    /// current one; on an unknown outcome look the version up before trying again.
    private func write(topic: String, writer: String) async throws -> WriterResult {
        let client = try await connection.connect(for: topic)
        defer { client.close() }
        let producer = try Producer(client: client, configuration: ProducerConfiguration(linger: .zero, deliveryTimeout: .seconds(10)),
                                    logger: WarningLogHandler.logger)
        let keyBytes = Array(key.utf8)
        var result = WriterResult()
        var last = try await patiently { () async throws(SpoolError) in try await client.records(ofKey: keyBytes, in: topic).lastOffset }
        let clock = ContinuousClock()
        for version in 0..<versions {
            let started = clock.now
            while true {
                let value = "\(writer) \(version) after \(last ?? -1)"
                var failure: SpoolError?
                var stored: PublishResult?
                do {
                    stored = try await producer.send(to: topic, key: keyBytes, records: [OutgoingRecord(value: Array(value.utf8))], ifLastOffsetIs: last)
                } catch {
                    failure = error
                }
                if let stored {
                    last = stored.baseOffset
                    if stored.baseOffset < 0 {
                        // Stored earlier (a retry after a restart), offset unknown: read it.
                        last = try await patiently { () async throws(SpoolError) in try await client.records(ofKey: keyBytes, in: topic).lastOffset }
                    }
                    break
                }
                guard let failure else { continue }
                if failure.code == .keyConflict {
                    result.conflicts += 1
                    last = failure.details["lastOffset"].flatMap { $0 >= 0 ? $0 : nil }
                    continue
                }
                guard failure.isRetriable || failure.code == .timedOut else { throw failure }
                // The outcome is unknown: the history says whether this version got in.
                result.inDoubt += 1
                let history = try await patiently { () async throws(SpoolError) in
                    try await client.records(ofKey: keyBytes, in: topic, from: last.map { $0 + 1 } ?? 0)
                }
                if let current = history.lastOffset { last = current }
                if history.records.contains(where: { String(decoding: $0.value, as: UTF8.self) == value }) { break }
            }
            result.latencies.append((clock.now - started).seconds)
        }
        try await producer.close()
        return result
    }

    /// Runs `body` until it succeeds, waiting out retriable failures (a restarting broker) for up to --patience seconds.
    private func patiently<T>(_ body: () async throws(SpoolError) -> T) async throws(SpoolError) -> T {
        let deadline = ContinuousClock.now + .milliseconds(Int64(patience * 1000))
        while true {
            var failure: SpoolError
            do {
                return try await body()
            } catch {
                failure = error
            }
            guard (failure.isRetriable || failure.code == .timedOut) && ContinuousClock.now < deadline else { throw failure }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}
