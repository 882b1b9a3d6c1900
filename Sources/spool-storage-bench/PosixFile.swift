import Glibc

/// A file used through Glibc directly (`open`, `pwrite`, `fdatasync`), so the disk section
/// measures the system calls and nothing else. Closed when released.
final class PosixFile {
    /// The path it was opened with.
    let path: String
    private let descriptor: Int32

    /// Opens `path` with `flags` (new files get mode 0644).
    init(path: String, flags: Int32) throws(BenchError) {
        self.path = path
        descriptor = open(path, flags | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw BenchError.posix("cannot open", path: path) }
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes` at `offset`, retrying short and interrupted writes.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(BenchError) {
        var written = 0
        while written < bytes.count {
            let count = pwrite(descriptor, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
            if count < 0 {
                if errno == EINTR { continue }
                throw BenchError.posix("cannot write to", path: path)
            }
            written += count
        }
    }

    /// Forces the written data (and the size, if it changed) to the disk with `fdatasync`.
    func syncData() throws(BenchError) {
        guard fdatasync(descriptor) == 0 else { throw BenchError.posix("cannot fdatasync", path: path) }
    }
}
