/// An open file or directory descriptor shared by a segment, the slices read from it and the sync
/// work that covers it. The descriptor is closed when the last reference goes away, so a
/// ``LogSlice`` or ``SyncWork`` stays valid after its log rolled or closed.
///
/// Thread-safe: the fields are immutable, and `pread`, `pwritev`, `ftruncate` and `fdatasync` on
/// one descriptor may run concurrently.
final class FileHandle: Sendable {
    let descriptor: Int32
    let path: String
    let isDirectory: Bool
    /// The seam every write, truncation and sync of this file goes through.
    let io: FileIO

    /// Takes ownership of `descriptor`.
    init(descriptor: Int32, path: String, isDirectory: Bool = false, io: FileIO) {
        self.descriptor = descriptor
        self.path = path
        self.isDirectory = isDirectory
        self.io = io
    }

    /// Opens `path` with `flags`.
    convenience init(opening path: String, flags: Int32, isDirectory: Bool = false, io: FileIO) throws(StorageError) {
        self.init(descriptor: try Syscall.open(path, flags), path: path, isDirectory: isDirectory, io: io)
    }

    deinit { Syscall.close(descriptor) }

    func write(at offset: Int, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws(StorageError) {
        try io.write(descriptor, path: path, at: offset, first, second)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StorageError) -> Int {
        try Syscall.read(descriptor, path: path, into: buffer, at: offset)
    }

    func truncate(to length: Int) throws(StorageError) {
        try io.truncate(descriptor, path: path, to: length)
    }

    /// `fdatasync` for a file, `fsync` for a directory.
    func sync() throws(StorageError) {
        try io.sync(descriptor, path: path, isDirectory: isDirectory)
    }

    func size() throws(StorageError) -> Int {
        try Syscall.fileSize(descriptor, path: path)
    }
}
