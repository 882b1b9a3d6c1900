/// What one ``PartitionLog/applyRetention(nowMilliseconds:)`` deleted.
public struct RetentionResult: Sendable, Hashable, CustomStringConvertible {
    /// Whole segments deleted from the front of the log.
    public var deletedSegments: Int
    /// Their bytes.
    public var deletedBytes: Int
    /// The log's first offset afterwards.
    public var logStartOffset: Int64

    /// Creates a result.
    public init(deletedSegments: Int, deletedBytes: Int, logStartOffset: Int64) {
        self.deletedSegments = deletedSegments
        self.deletedBytes = deletedBytes
        self.logStartOffset = logStartOffset
    }

    /// "2 segments, 2048 bytes; log starts at offset 40".
    public var description: String {
        "\(deletedSegments) segment\(deletedSegments == 1 ? "" : "s"), \(deletedBytes) bytes; log starts at offset \(logStartOffset)"
    }
}
