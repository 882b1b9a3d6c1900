/// Reads wire-format fields from a borrowed buffer, checking every length against what is
/// left before it reads or allocates. A short or inconsistent input throws ``WireError``
/// (``ErrorCode/malformedRequest`` unless the caller asks otherwise); it never traps.
///
/// The reader borrows its buffer: use it only inside the `withUnsafeBytes` scope that made it.
public struct WireReader {
    /// The bytes being read.
    public let buffer: UnsafeRawBufferPointer
    /// Index of the next byte to read.
    public private(set) var position: Int
    /// The code thrown on a short read: `malformedRequest` for messages, `corruptBatch` inside batches.
    public var errorCode: ErrorCode

    /// Creates a reader over `buffer`, starting at its first byte.
    public init(_ buffer: UnsafeRawBufferPointer, errorCode: ErrorCode = .malformedRequest) {
        self.buffer = buffer
        self.position = 0
        self.errorCode = errorCode
    }

    /// Bytes not read yet.
    public var remaining: Int { buffer.count - position }

    /// True when every byte has been read.
    public var isAtEnd: Bool { position == buffer.count }

    private func fail(_ what: String) -> WireError {
        WireError(errorCode, "\(what) at byte \(position) of \(buffer.count)")
    }

    /// Reads a fixed-width little-endian integer.
    public mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw fail("truncated \(T.self)") }
        let value = buffer.loadUnaligned(fromByteOffset: position, as: T.self)
        position += size
        return T(littleEndian: value)
    }

    /// Reads a one-byte boolean; any value other than 0 or 1 is an error.
    public mutating func readBool() throws(WireError) -> Bool {
        switch try read(UInt8.self) {
        case 0: return false
        case 1: return true
        default: throw fail("boolean out of range")
        }
    }

    /// Reads a `u16`-length UTF-8 string; invalid UTF-8 is an error.
    public mutating func readString() throws(WireError) -> String {
        let length = Int(try read(UInt16.self))
        let slice = try readRaw(count: length)
        guard let string = String(validating: slice, as: UTF8.self) else { throw fail("invalid UTF-8 string") }
        return string
    }

    /// Reads a `u32`-length byte field, refusing lengths beyond what is left.
    public mutating func readBytes() throws(WireError) -> [UInt8] {
        let length = Int(try read(UInt32.self))
        return Array(try readRaw(count: length))
    }

    /// Reads a `u32` array count, refusing counts above 100,000 or that cannot fit in what is left
    /// when each element takes at least `minimumElementSize` bytes.
    public mutating func readCount(minimumElementSize: Int = 1) throws(WireError) -> Int {
        let count = Int(try read(UInt32.self))
        guard count <= WireLimits.maxArrayCount, count * max(minimumElementSize, 0) <= remaining else {
            throw fail("array count \(count) does not fit")
        }
        return count
    }

    /// Reads `count` raw bytes as a borrowed slice of the buffer.
    public mutating func readRaw(count: Int) throws(WireError) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw fail("length \(count) exceeds the \(remaining) bytes left") }
        let slice = UnsafeRawBufferPointer(rebasing: buffer[position..<(position + count)])
        position += count
        return slice
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes.
    public mutating func readVarint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < buffer.count else { throw fail("truncated varint") }
            let byte = buffer[position]
            position += 1
            guard shift < 64, !(shift == 63 && byte > 1) else { throw fail("varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Reads a zig-zag signed varint.
    public mutating func readZigZag() throws(WireError) -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    /// Throws unless every byte was read: trailing bytes mean the peer and we disagree on the layout.
    public func expectEnd(_ what: @autoclosure () -> String) throws(WireError) {
        guard isAtEnd else { throw fail("\(remaining) unexpected trailing bytes after \(what())") }
    }
}
