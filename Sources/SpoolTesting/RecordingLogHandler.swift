import Logging
import Synchronization

/// Keeps every log line (level, message and metadata), so a test can check what a component
/// logged: a recovery's report, a fault logged once, a loss reported.
public final class RecordingLogHandler: LogHandler, Sendable {
    /// One line as it was logged.
    public struct Entry: Sendable {
        /// Its level.
        public let level: Logger.Level
        /// The message, without metadata.
        public let message: String
        /// The metadata given with it.
        public let metadata: Logger.Metadata
    }

    private let recorded = Mutex<[Entry]>([])

    /// A handler that has recorded nothing yet.
    public init() {}

    public var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }

    public var logLevel: Logger.Level {
        get { .trace }
        set {}
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    public func log(event: LogEvent) {
        recorded.withLock { $0.append(Entry(level: event.level, message: "\(event.message)", metadata: event.metadata ?? [:])) }
    }

    /// Every line logged at `level`, oldest first.
    public func entries(at level: Logger.Level) -> [Entry] {
        recorded.withLock { $0.filter { $0.level == level } }
    }

    /// The messages logged at `level`, oldest first.
    public func messages(at level: Logger.Level) -> [String] {
        entries(at: level).map(\.message)
    }

    /// A new handler and a logger that writes to it.
    public static func logger(label: String = "spool.tests") -> (handler: RecordingLogHandler, logger: Logger) {
        let handler = RecordingLogHandler()
        return (handler, Logger(label: label, factory: { _ in handler }))
    }
}
