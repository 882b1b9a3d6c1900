extension Duration {
    /// The duration in whole milliseconds, rounded toward zero (what the wire protocol and the
    /// saga kit's timestamps use).
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
