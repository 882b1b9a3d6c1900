import SpoolWire

/// The records of one key, read through the broker's key index (see ``SpoolClient/records(ofKey:in:from:)``).
public struct KeyRecords: Sendable {
    /// The key's records from the requested offset on, in offset order.
    public let records: [SpoolRecord]
    /// The offset of the key's last record still stored and visible, nil if there is none: the
    /// value to pass to ``Producer/send(to:key:records:ifLastOffsetIs:)`` next.
    public let lastOffset: Int64?
}

extension SpoolClient {
    /// Reads every record of `key` in its partition of `topic` (the one a keyed publish uses)
    /// from `offset` on, without scanning the partition: the broker finds the key's batches in
    /// its key index, so the cost grows with the key's records, not the partition's.
    public func records(ofKey key: [UInt8], in topic: String, from offset: Int64 = 0) async throws(SpoolError) -> KeyRecords {
        try Self.checkTopicName(topic)
        let partition = try await choosePartition(topic, key: key)
        var records: [SpoolRecord] = []
        var next = offset
        while true {
            let (response, page) = try await fetchKey(key, topic: topic, partition: partition, from: next, maxBytes: configuration.fetchMaxBytes)
            records += page
            guard response.lastOffset >= 0, response.nextOffset <= response.lastOffset, response.nextOffset > next else {
                return KeyRecords(records: records, lastOffset: response.lastOffset >= 0 ? response.lastOffset : nil)
            }
            next = response.nextOffset
        }
    }

    /// The last record of `key` in its partition of `topic`, or nil if it has none: two small
    /// reads through the key index (where the last record is, then that record).
    public func lastRecord(ofKey key: [UInt8], in topic: String) async throws(SpoolError) -> SpoolRecord? {
        try Self.checkTopicName(topic)
        let partition = try await choosePartition(topic, key: key)
        let (located, _) = try await fetchKey(key, topic: topic, partition: partition, from: 0, maxBytes: 1)
        guard located.lastOffset >= 0 else { return nil }
        let (_, page) = try await fetchKey(key, topic: topic, partition: partition, from: located.lastOffset, maxBytes: 1)
        return page.last
    }

    /// One fetch-key request: the reply and the key's records in it at or after `offset`.
    private func fetchKey(_ key: [UInt8], topic: String, partition: Int32, from offset: Int64,
                          maxBytes: Int) async throws(SpoolError) -> (FetchKeyResponse, [SpoolRecord]) {
        let request = FetchKeyRequest(topic: topic, partition: partition, key: key, offset: offset, maxBytes: UInt32(clamping: maxBytes))
        let reply = try await call(.fetchKey, [request.encoded()])
        let (response, page) = try recordsReply(reply, FetchKeyResponse.self, topic: topic, partition: partition, offset: offset)
        return (response, page.records.filter { $0.key == key })
    }
}
