import Foundation
import Spool
import SpoolTesting
import Synchronization
import Testing

/// Asserts that `records` are exactly `expected` (same keys, values, headers and, where set,
/// timestamps), at offsets `firstOffset`, `firstOffset + 1`, ….
func expectRecords(_ records: [SpoolRecord], match expected: [OutgoingRecord], firstOffset: Int64 = 0,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(records.count == expected.count, "record count", sourceLocation: sourceLocation)
    var mismatches = 0
    for (index, (record, sent)) in zip(records, expected).enumerated() {
        let offset = firstOffset + Int64(index)
        let same = record.offset == offset && record.key == sent.key && record.value == sent.value
            && record.headers == sent.headers && (sent.timestamp.map { $0 == record.timestamp } ?? true)
        if !same {
            mismatches += 1
            if mismatches <= 5 {
                Issue.record("record #\(index) differs: got \(record), sent \(sent) at offset \(offset)", sourceLocation: sourceLocation)
            }
        }
    }
    #expect(mismatches == 0, "\(mismatches) records differ", sourceLocation: sourceLocation)
}

/// Reads `topic`/`partition` from `offset` up to its current end with plain fetches.
func fetchAll(_ client: SpoolClient, _ topic: String, partition: Int32 = 0, from offset: Int64 = 0) async throws -> [SpoolRecord] {
    let end = try await client.offset(of: topic, partition: partition, .latest)
    var records: [SpoolRecord] = []
    var next = offset
    while next < end {
        let batch = try await client.fetch(from: topic, partition: partition, offset: next).records
        try #require(!batch.isEmpty, "fetch at \(next) of \(topic) returned nothing before the end \(end)")
        records += batch
        next = batch[batch.count - 1].offset + 1
    }
    return records
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Records collected by a consumer task.
final class Collected: Sendable {
    private let storage = Mutex<[SpoolRecord]>([])
    var records: [SpoolRecord] { storage.withLock { $0 } }
    var count: Int { storage.withLock { $0.count } }
    func append(_ record: SpoolRecord) { storage.withLock { $0.append(record) } }
}

/// Runs `body` and returns the ``SpoolError`` it throws; records an issue if it throws
/// something else or nothing.
func spoolError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async -> SpoolError? {
    do {
        try await body()
        Issue.record("expected a SpoolError, but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as SpoolError {
        return error
    } catch {
        Issue.record("expected a SpoolError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A loopback TCP port nothing listens on (bound to port 0, then closed).
func closedLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(descriptor >= 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    try #require(bound == 0, "bind failed: errno \(errno)")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    try #require(named == 0)
    return Int(UInt16(bigEndian: address.sin_port))
}
