/// One record as stored in a partition: dense offset, creation time, optional key, ordered
/// headers and a value. Offsets are assigned by the broker; a record being produced has
/// offset 0 until then.
public struct Record: Hashable, Sendable {
    /// Position in the partition: dense from 0 as written (the log cleaner of a compacted topic
    /// removes records, never renumbers them).
    public var offset: Int64
    /// Creation time in milliseconds since the Unix epoch, set by the producer.
    public var timestamp: Int64
    /// Routing key; `nil` means "no key" (distinct from an empty key).
    public var key: [UInt8]?
    /// The payload.
    public var value: [UInt8]
    /// Ordered headers; a name may repeat.
    public var headers: [RecordHeader]

    public init(offset: Int64 = 0, timestamp: Int64, key: [UInt8]? = nil, value: [UInt8], headers: [RecordHeader] = []) {
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// One record header: a UTF-8 name and a byte value.
public struct RecordHeader: Hashable, Sendable {
    /// The header name.
    public var name: String
    /// The header value.
    public var value: [UInt8]

    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }

    /// A header whose value is the UTF-8 of `value`.
    public init(name: String, string value: String) {
        self.init(name: name, value: Array(value.utf8))
    }
}
