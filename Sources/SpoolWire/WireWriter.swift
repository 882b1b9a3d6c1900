/// Appends wire-format fields to a growing byte buffer.
///
/// Layout rules (protocol v1): integers are little-endian and fixed-width; strings are a
/// `u16` byte length then UTF-8; byte fields are a `u32` length then the bytes; arrays are a
/// `u32` count then the elements. Record batches use varints instead (see ``RecordBatch``).
public struct WireWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Creates an empty writer that reserves `capacity` bytes up front.
    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends a fixed-width integer, little-endian.
    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a boolean as one byte (0 or 1).
    public mutating func write(_ value: Bool) { write(UInt8(value ? 1 : 0)) }

    /// Appends a string as `u16` length + UTF-8. Strings longer than 65,535 bytes are a caller bug.
    public mutating func write(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            precondition(utf8.count <= WireLimits.maxStringBytes, "wire string longer than 65535 bytes")
            write(UInt16(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// Appends a byte field as `u32` length + bytes.
    public mutating func write(bytes value: some Collection<UInt8>) {
        write(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// Appends an array as `u32` count followed by each element written by `element`.
    public mutating func write<C: Collection>(array: C, _ element: (inout WireWriter, C.Element) -> Void) {
        write(UInt32(array.count))
        for item in array { element(&self, item) }
    }

    /// Appends an unsigned LEB128 varint.
    public mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// Appends a signed varint in zig-zag encoding (small magnitudes stay short).
    public mutating func writeZigZag(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Appends raw bytes with no length prefix.
    public mutating func writeRaw(_ value: some Sequence<UInt8>) { bytes.append(contentsOf: value) }

    /// Overwrites a fixed-width integer at `offset` (for lengths and checksums known only at the end).
    public mutating func overwrite<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { source in
            bytes.withUnsafeMutableBytes { target in
                target.baseAddress!.advanced(by: offset).copyMemory(from: source.baseAddress!, byteCount: source.count)
            }
        }
    }

    /// Bytes ``writeVarint(_:)`` takes for `value`.
    public static func varintSize(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    /// Bytes ``writeZigZag(_:)`` takes for `value`.
    public static func zigZagSize(_ value: Int64) -> Int {
        varintSize(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }
}
