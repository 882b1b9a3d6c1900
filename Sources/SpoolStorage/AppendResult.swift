/// Where ``PartitionLog/append(_:)`` put a batch.
public struct AppendResult: Sendable, Hashable {
    /// Offset given to the batch's first record.
    public var baseOffset: Int64
    /// Offset of its last record; the log's end is `lastOffset + 1`.
    public var lastOffset: Int64
    /// Bytes the batch occupies in the log.
    public var byteCount: Int

    /// Creates a result.
    public init(baseOffset: Int64, lastOffset: Int64, byteCount: Int) {
        self.baseOffset = baseOffset
        self.lastOffset = lastOffset
        self.byteCount = byteCount
    }
}
