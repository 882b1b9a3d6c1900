/// Hard upper bounds that decoders check before they allocate, whatever a peer claims.
enum WireLimits {
    /// Longest string field (topic names, messages, header keys).
    static let maxStringBytes = Int(UInt16.max)
    /// Most elements in one array field (topics in a metadata request, details in an error).
    static let maxArrayCount = 100_000
}
