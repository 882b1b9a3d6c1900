import SpoolWire

/// The keys of one batch's records: each distinct key with the offset delta of its last record,
/// what the key index records for the batch. Collect them while validating the batch (its
/// `onKey` callback) and pass them to ``PartitionLog/append(_:keys:at:)``, which then does not
/// walk the records a second time. A batch without keys costs nothing.
public struct BatchKeys: Sendable {
    /// In first-seen order; a key may repeat once there are more than 16 (``distinct`` merges).
    private var entries: [(key: IndexedKey, lastDelta: UInt32)] = []

    /// No keys yet.
    public init() {}

    /// Adds the key of the record at `offsetDelta` (records come in offset order).
    public mutating func add(offsetDelta: UInt32, key: UnsafeRawBufferPointer) {
        if let last = entries.last, last.key.bytes.elementsEqual(key) {
            entries[entries.count - 1].lastDelta = offsetDelta
        } else if entries.count <= 16, let earlier = entries.firstIndex(where: { $0.key.bytes.elementsEqual(key) }) {
            entries[earlier].lastDelta = offsetDelta
        } else {
            entries.append((IndexedKey(Array(key)), offsetDelta))
        }
    }

    /// The keys of one whole batch, read from its records. Throws ``StorageError/Code/corrupt``
    /// if the records cannot be read.
    static func of(_ batch: UnsafeRawBufferPointer) throws(StorageError) -> BatchKeys {
        var keys = BatchKeys()
        do throws(WireError) {
            try RecordBatch.forEachKey(in: batch) { delta, key in keys.add(offsetDelta: delta, key: key) }
        } catch {
            throw StorageError(.corrupt, "cannot index the keys of a batch: \(error.message)")
        }
        return keys
    }

    /// Each key once, with the delta of its last record.
    var distinct: [(key: IndexedKey, lastDelta: UInt32)] {
        guard entries.count > 16 else { return entries }
        var merged: [IndexedKey: Int] = [:]
        var distinct: [(key: IndexedKey, lastDelta: UInt32)] = []
        for entry in entries {
            if let index = merged[entry.key] {
                distinct[index].lastDelta = max(distinct[index].lastDelta, entry.lastDelta)
            } else {
                merged[entry.key] = distinct.count
                distinct.append(entry)
            }
        }
        return distinct
    }
}
