import Foundation
import Spool
import SpoolTesting
import Synchronization
import Testing

/// One line of `spool … --format json`.
struct JSONRecord: Decodable {
    struct Header: Decodable {
        var name: String
        var value: String?
        var valueBase64: String?
    }

    var topic: String
    var partition: Int32
    var offset: Int64
    var timestamp: Int64
    var key: String?
    var keyBase64: String?
    var headers: [Header]?
    var value: String?
    var valueBase64: String?

    /// Parses every line of `output`; a line that does not parse fails the test.
    static func parseLines(_ lines: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [SpoolRecord] {
        let decoder = JSONDecoder()
        return try lines.enumerated().map { number, line in
            do {
                return try decoder.decode(JSONRecord.self, from: Data(line.utf8)).record()
            } catch {
                throw HarnessError("line \(number + 1) of the JSON output does not parse (\(error)): \(line.prefix(300))")
            }
        }
    }

    func record() throws -> SpoolRecord {
        guard let value = try Self.bytes(value, valueBase64, "value") else { throw HarnessError("offset \(offset) has no value") }
        let headers = try (self.headers ?? []).map { header in
            guard let value = try Self.bytes(header.value, header.valueBase64, "header value") else {
                throw HarnessError("header \(header.name) of offset \(offset) has no value")
            }
            return RecordHeader(name: header.name, value: value)
        }
        return SpoolRecord(topic: topic, partition: partition, offset: offset, timestamp: timestamp,
                           key: try Self.bytes(key, keyBase64, "key"), value: value, headers: headers)
    }

    private static func bytes(_ text: String?, _ base64: String?, _ what: String) throws -> [UInt8]? {
        switch (text, base64) {
        case (let text?, nil): return Array(text.utf8)
        case (nil, let base64?):
            guard let data = Data(base64Encoded: base64) else { throw HarnessError("\(what) is not base64: \(base64)") }
            return Array(data)
        case (nil, nil): return nil
        case (_?, _?): throw HarnessError("\(what) is given both as text and as base64")
        }
    }
}

/// Asserts `records` are `expected` at offsets `firstOffset`…, byte for byte (key, value,
/// headers; the timestamp where one was set). Reports at most a few differing records.
func expectRecords(_ records: [SpoolRecord], match expected: [OutgoingRecord], firstOffset: Int64 = 0, topic: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(records.count == expected.count, "record count", sourceLocation: sourceLocation)
    var mismatches = 0
    for (index, (record, sent)) in zip(records, expected).enumerated() {
        let offset = firstOffset + Int64(index)
        let same = record.offset == offset && record.key == sent.key && record.value == sent.value && record.headers == sent.headers
            && (sent.timestamp.map { $0 == record.timestamp } ?? true) && (topic.map { $0 == record.topic } ?? true)
        if !same {
            mismatches += 1
            if mismatches <= 5 {
                Issue.record("record #\(index) differs:\n got  \(record)\n sent \(sent) at offset \(offset)", sourceLocation: sourceLocation)
            }
        }
    }
    #expect(mismatches == 0, "\(mismatches) of \(expected.count) records differ", sourceLocation: sourceLocation)
}

/// Every record of partition 0 of `topic` from `offset` to the current end, by plain fetches.
func fetchAll(_ client: SpoolClient, _ topic: String, from offset: Int64 = 0) async throws -> [SpoolRecord] {
    let end = try await client.offset(of: topic, .latest)
    var records: [SpoolRecord] = []
    var next = offset
    while next < end {
        let batch = try await client.fetch(from: topic, offset: next).records
        guard let last = batch.last else { throw HarnessError("fetch at \(next) of \(topic) returned nothing before the end \(end)") }
        records += batch
        next = last.offset + 1
    }
    return records
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Records a consumer task collected, readable from the test.
final class TailedRecords: Sendable {
    private let storage = Mutex<[SpoolRecord]>([])
    var records: [SpoolRecord] { storage.withLock { $0 } }
    var count: Int { storage.withLock { $0.count } }
    func append(_ record: SpoolRecord) { storage.withLock { $0.append(record) } }
}
