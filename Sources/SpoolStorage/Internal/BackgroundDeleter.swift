import Dispatch
import Foundation
import Logging

/// Unlinks the files of deleted segments, and the directories of deleted topics, on a background
/// queue, so that freeing a large file never holds up the thread that owns the log. The files
/// were renamed to `*.deleted` (topics to `@deleted-*`) first, and ``PartitionLog`` (the
/// ``DataDirectory``) removes any such leftovers when it opens, so a crash in between loses
/// nothing that was still part of a log.
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

    /// Removes the directory tree at `path`, later; a failure is logged at warning (the next
    /// open of the data directory tries again).
    static func removeTree(_ path: String, logger: Logger) {
        queue.async {
            do {
                try FileManager.default.removeItem(atPath: path)
            } catch {
                logger.warning("could not remove a deleted topic's directory", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
    }
}
