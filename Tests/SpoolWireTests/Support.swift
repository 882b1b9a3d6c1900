import Foundation
import SpoolWire
import SpoolTesting
import Testing

// MARK: Bytes

/// Bytes from a hex string; whitespace is ignored, and so is everything from `#` to the end of a line.
func hexBytes(_ text: String) -> [UInt8] {
    let digits = text.split(separator: "\n", omittingEmptySubsequences: false)
        .map { line in line.prefix { $0 != "#" } }
        .joined()
        .filter { !$0.isWhitespace }
    precondition(digits.allSatisfy(\.isHexDigit), "not a hex digit in \(digits)")
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    var result: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        result.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return result
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// Bit-at-a-time CRC-32C straight from the definition (reflected polynomial 0x82F63B78), as an
/// independent reference for the table and SSE4.2 paths.
func referenceCRC32C(_ bytes: some Sequence<UInt8>, crc: UInt32 = 0) -> UInt32 {
    var crc = ~crc
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}

// MARK: Decoding helpers

/// Runs `body` with the bytes of `array`.
func withExactBytes<R>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(WireError) -> R) throws(WireError) -> R {
    // Copy into exactly-sized memory so a decoder that reads past the end would be caught by
    // the address sanitizer rather than reading the array's spare capacity.
    let pointer = UnsafeMutableRawBufferPointer.allocate(byteCount: array.count, alignment: 1)
    defer { pointer.deallocate() }
    array.withUnsafeBytes { pointer.copyMemory(from: $0) }
    return try body(UnsafeRawBufferPointer(pointer))
}

/// The error `body` throws, or nil if it returns.
func wireError<R>(_ body: () throws(WireError) -> R) -> WireError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}
