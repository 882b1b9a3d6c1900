import Foundation
import Spool
import SpoolTesting
import Synchronization
import Testing





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

/// Asserts `records` are `expected` at offsets `firstOffset`…, byte for byte (key, value,
/// headers; the timestamp where one was set; the topic if given).
func expectRecords(_ records: [SpoolRecord], match expected: [OutgoingRecord], firstOffset: Int64 = 0, topic: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    let differences = recordDifferences(records, expected: expected, firstOffset: firstOffset, topic: topic)
    for line in differences.prefix(5) { Issue.record(Comment(rawValue: line), sourceLocation: sourceLocation) }
    #expect(differences.isEmpty, "\(differences.count) differences", sourceLocation: sourceLocation)
}
