import Foundation
import SpoolWire
import Testing

// MARK: Randomness

/// A seeded generator (SplitMix64) so a failing random test can be replayed: every test that uses
/// one prints its seed; set SPOOL_TEST_SEED to rerun with it.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A generator with a fresh seed (or SPOOL_TEST_SEED), printed with `name`.
    static func logged(_ name: String = #function) -> SplitMix64 {
        let seed = ProcessInfo.processInfo.environment["SPOOL_TEST_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("seed", seed, "test", name, "(replay with SPOOL_TEST_SEED=\(seed))")
        return SplitMix64(seed: seed)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count + 8)
        while result.count < count {
            withUnsafeBytes(of: next()) { result.append(contentsOf: $0) }
        }
        result.removeLast(result.count - count)
        return result
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func bool() -> Bool { Bool.random(using: &self) }
}

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
