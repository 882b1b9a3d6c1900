/// The body frame of a request or reply. Operations that move records carry them in one more
/// frame after the body (the batch of a produce, the batches of a fetch reply), so record
/// bytes are never copied into or out of the body.
public protocol WireMessage: Sendable {
    /// The operation this body belongs to.
    static var opCode: OpCode { get }
    /// Appends the body's fields.
    func encode(into writer: inout WireWriter)
    /// Reads the body's fields; throws on anything short, long or out of range.
    init(from reader: inout WireReader) throws(WireError)
}

extension WireMessage {
    /// The encoded body frame.
    public func encoded() -> [UInt8] {
        var writer = WireWriter()
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes a whole body frame; trailing bytes are an error.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Self {
        var reader = WireReader(bytes)
        let message = try Self(from: &reader)
        try reader.expectEnd("\(opCode) body")
        return message
    }

    /// Decodes a whole body frame held in an array.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Self {
        do {
            return try bytes.withUnsafeBytes { buffer in try decode(buffer) }
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.unknown, "\(error)")
        }
    }
}
