/// What a partition's key index holds and costs (``PartitionLog/keyIndexStatistics``).
public struct KeyIndexStatistics: Sendable, Hashable {
    /// Index files: runs and the retired table.
    public let files: Int
    /// Bytes of those files.
    public let fileBytes: Int
    /// Keys of the newest records, held in memory until they fill a file.
    public let keysInMemory: Int
    /// Bytes of memory: the Bloom filters and sparse indexes of the files, and the keys in memory
    /// (estimated at 100 bytes per key and 20 per batch holding it).
    public let memoryBytes: Int
}

/// The batches of one key found by ``PartitionLog/read(key:from:maxBytes:endOffset:)``.
public struct KeySlices: Sendable {
    /// Whole batches holding records of the key, in offset order (each may hold other keys'
    /// records too, and the first may hold the key's records below the requested offset).
    public let slices: [LogSlice]
    /// Where the next read of the key continues: after the key's last record in `slices`, or the
    /// visible end when there was nothing to read.
    public let nextOffset: Int64
    /// The offset of the key's last visible record still stored, or nil if there is none.
    public let lastOffset: Int64?
}
