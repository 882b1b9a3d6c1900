/// Asks the broker for a producer id, for idempotent produces: the producer stamps the id and a
/// per-partition sequence into each batch's header (``RecordBatchBuilder/producerID``,
/// ``RecordBatchBuilder/baseSequence``), and the broker appends a batch only if its sequence
/// follows the last one it stored for that producer and partition, so a retried batch is never
/// stored twice. Replied to with ``InitProducerIDResponse``.
public struct InitProducerIDRequest: WireMessage, Hashable {
    public static let opCode = OpCode.initProducerID
    public init() {}
    public func encode(into writer: inout WireWriter) {}
    public init(from reader: inout WireReader) throws(WireError) {}
}

/// A fresh producer id (random, 63 bits, never reused in practice) and its epoch.
public struct InitProducerIDResponse: WireMessage, Hashable {
    public static let opCode = OpCode.initProducerID
    /// The id to stamp into batches; non-negative.
    public var producerID: Int64
    /// The epoch to stamp into batches.
    public var producerEpoch: Int16

    public init(producerID: Int64, producerEpoch: Int16) {
        self.producerID = producerID
        self.producerEpoch = producerEpoch
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(producerID)
        writer.write(producerEpoch)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        producerID = try reader.read()
        producerEpoch = try reader.read()
    }
}
