/// A received frame the broker can read without copying. The transport's message type
/// conforms; so does `[UInt8]`, which is what tests pass.
public protocol RequestFrame {
    /// Calls `body` with the frame's bytes, valid only during the call.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: RequestFrame where Element == UInt8 {}
