import Logging

/// Prints the SDK's warnings and errors as the CLI's own lines on stderr,
/// `spool: warning: <message>: <error>`, and drops everything below warning: a producer
/// retrying on a full disk says so at once instead of waiting silently.
struct WarningLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let place = [merged["topic"], merged["partition"]].compactMap { $0.map { "\($0)" } }.joined(separator: "/")
        let detail = merged["error"].map { ": \($0)" } ?? ""
        let level = event.level >= .error ? "error" : "warning"
        Terminal.writeError("spool: \(level): \(place.isEmpty ? "" : "\(place): ")\(event.message)\(detail)\n")
    }

    /// A logger for the SDK objects a command runs.
    static let logger = Logger(label: "spool") { _ in WarningLogHandler() }
}
