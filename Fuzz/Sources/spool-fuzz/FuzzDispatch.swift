/// The fuzz targets and the one libFuzzer runs in this process.
enum FuzzDispatch {
    static let targets = WireFuzzTargets.all + StorageFuzzTargets.all

    /// Set once by main before libFuzzer starts, read by libFuzzer's (single) fuzzing thread.
    nonisolated(unsafe) static var selected: (@Sendable (UnsafeRawBufferPointer) throws -> Void)?

    /// Runs the selected target on one input; a broken invariant traps, so libFuzzer saves the input.
    static func run(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        guard let selected else { fatalError("no fuzz target selected") }
        do {
            try selected(UnsafeRawBufferPointer(start: data, count: size))
        } catch {
            fatalError("fuzz invariant broken: \(error)")
        }
        return 0
    }
}

/// libFuzzer's per-input callback, which its runtime references (inputs given by
/// LLVMFuzzerRunDriver's callback take the same path).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzDispatch.run(data, size)
}
