import Logging
import Synchronization

/// Keeps every log message, to check what recovery logs.
final class RecordingLogHandler: LogHandler, Sendable {
    private let entries = Mutex<[(level: Logger.Level, message: String)]>([])
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        entries.withLock { $0.append((event.level, "\(event.message)")) }
    }

    func messages(at level: Logger.Level) -> [String] {
        entries.withLock { $0.filter { $0.level == level }.map(\.message) }
    }

    static func logger() -> (handler: RecordingLogHandler, logger: Logger) {
        let handler = RecordingLogHandler()
        return (handler, Logger(label: "spool.storage.tests", factory: { _ in handler }))
    }
}
