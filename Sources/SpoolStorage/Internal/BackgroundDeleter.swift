import Dispatch
import Logging

/// Unlinks the files of deleted segments on a background queue, so that freeing a large file
/// never holds up the thread that owns the log. The files were renamed to `*.deleted` first, and
/// ``PartitionLog`` removes any such leftovers when it opens, so a crash in between loses nothing
/// that was still part of a log.
enum BackgroundDeleter {
    private static let queue = DispatchQueue(label: "spool.segment-deleter", qos: .utility)

    /// Unlinks `paths` in order, later; a failure is logged at warning.
    static func unlink(_ paths: [String], logger: Logger) {
        queue.async {
            for path in paths {
                do throws(StorageError) {
                    try Syscall.unlinkIfPresent(path)
                } catch {
                    logger.warning("could not delete a retired segment file", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
