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
/// headers; the timestamp where one was set; the topic if given).
func expectRecords(_ records: [SpoolRecord], match expected: [OutgoingRecord], firstOffset: Int64 = 0, topic: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    let differences = recordDifferences(records, expected: expected, firstOffset: firstOffset, topic: topic)
    for line in differences.prefix(5) { Issue.record(Comment(rawValue: line), sourceLocation: sourceLocation) }
    #expect(differences.isEmpty, "\(differences.count) differences", sourceLocation: sourceLocation)
}
