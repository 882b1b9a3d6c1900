import Glibc

/// The system calls that change files, as replaceable functions, so tests can make the k-th write
/// or sync fail (like NATS `mockWriteErr`). Each function has its libc signature and reports
/// failure the libc way: -1 with `errno` set. ``system`` calls the kernel.
///
/// Every storage write goes through ``pwritev``, every file sync through ``fdatasync``, every
/// directory sync through ``fsync`` and every truncation through ``ftruncate``; reads, opens and
/// renames are not injectable.
@_spi(Testing) public struct FileIO: Sendable {
    /// `pwritev(2)`: writes the vectors at the offset; returns bytes written (may be short) or -1.
    public var pwritev: @Sendable (_ descriptor: Int32, _ vectors: UnsafePointer<iovec>, _ count: Int32, _ offset: off_t) -> Int
    /// `fdatasync(2)` for regular files.
    public var fdatasync: @Sendable (_ descriptor: Int32) -> Int32
    /// `fsync(2)`, used for directories.
    public var fsync: @Sendable (_ descriptor: Int32) -> Int32
    /// `ftruncate(2)`.
    public var ftruncate: @Sendable (_ descriptor: Int32, _ length: off_t) -> Int32

    /// Creates a seam from the given functions.
    public init(
        pwritev: @escaping @Sendable (Int32, UnsafePointer<iovec>, Int32, off_t) -> Int,
        fdatasync: @escaping @Sendable (Int32) -> Int32,
        fsync: @escaping @Sendable (Int32) -> Int32,
        ftruncate: @escaping @Sendable (Int32, off_t) -> Int32
    ) {
        self.pwritev = pwritev
        self.fdatasync = fdatasync
        self.fsync = fsync
        self.ftruncate = ftruncate
    }

    /// The real system calls.
    public static let system = FileIO(
        pwritev: { Glibc.pwritev($0, $1, $2, $3) },
        fdatasync: { Glibc.fdatasync($0) },
        fsync: { Glibc.fsync($0) },
        ftruncate: { Glibc.ftruncate($0, $1) }
    )
}

// MARK: - Checked wrappers
//
// Every system call of the module is checked here: `errno` is read right after the failing call,
// EINTR is retried, short writes are continued and short reads are repeated until end of file.

extension FileIO {
    /// Writes all of `first` then all of `second` at `offset`, continuing short writes; a partial
    /// write may be left in the file when this throws.
    func write(
        _ descriptor: Int32, path: String, at offset: Int,
        _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)
    ) throws(StorageError) {
        let error: Int32 = withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { vectors in
            vectors[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress), iov_len: first.count)
            vectors[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress), iov_len: second.count)
            var current = 0
            var position = offset
            while current < vectors.count {
                if vectors[current].iov_len == 0 {
                    current += 1
                    continue
                }
                let written = pwritev(descriptor, vectors.baseAddress! + current, Int32(vectors.count - current), off_t(position))
                if written < 0 {
                    if Glibc.errno == EINTR { continue }
                    return Glibc.errno
                }
                if written == 0 { return EIO }
                position += written
                var remaining = written
                while remaining > 0 {
                    let taken = min(remaining, vectors[current].iov_len)
                    vectors[current].iov_base += taken
                    vectors[current].iov_len -= taken
                    remaining -= taken
                    if vectors[current].iov_len == 0 { current += 1 }
                }
            }
            return 0
        }
        if error != 0 { throw StorageError.systemCall("write to", path, errno: error) }
    }

    /// `fdatasync` for a file, `fsync` for a directory.
    func sync(_ descriptor: Int32, path: String, isDirectory: Bool) throws(StorageError) {
        while (isDirectory ? fsync(descriptor) : fdatasync(descriptor)) != 0 {
            let error = Glibc.errno
            if error != EINTR { throw StorageError.systemCall(isDirectory ? "fsync of" : "fdatasync of", path, errno: error) }
        }
    }

    /// Sets the file's size to `length` bytes.
    func truncate(_ descriptor: Int32, path: String, to length: Int) throws(StorageError) {
        while ftruncate(descriptor, off_t(length)) != 0 {
            let error = Glibc.errno
            if error != EINTR { throw StorageError.systemCall("truncate of", path, errno: error) }
        }
    }

    /// Replaces `directory/name` with `bytes` so that a crash leaves either the old or the new
    /// content: write a temporary file, sync it, rename it over the name, sync the directory
    /// (NATS `writeAtomically`). If a step before the rename fails (a full disk, say), the
    /// temporary file is removed, so a failed attempt leaves no file behind.
    func writeAtomically(_ bytes: [UInt8], directory: String, name: String) throws(StorageError) {
        let path = "\(directory)/\(name)"
        let temporaryPath = path + Self.temporarySuffix
        do throws(StorageError) {
            let descriptor = try Syscall.open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC)
            defer { Syscall.close(descriptor) }
            try withBytes(of: bytes) { (buffer) throws(StorageError) in try write(descriptor, path: temporaryPath, at: 0, buffer) }
            try sync(descriptor, path: temporaryPath, isDirectory: false)
            try Syscall.rename(temporaryPath, to: path)
        } catch {
            _ = try? Syscall.unlinkIfPresent(temporaryPath)
            throw error
        }
        try syncDirectory(directory)
    }

    /// Suffix of the temporary file of ``writeAtomically(_:directory:name:)``.
    static let temporarySuffix = ".tmp"

    /// Opens `path` (a directory) and fsyncs it, so entries created or renamed in it are durable.
    func syncDirectory(_ path: String) throws(StorageError) {
        let descriptor = try Syscall.open(path, O_RDONLY | O_DIRECTORY)
        defer { Syscall.close(descriptor) }
        try sync(descriptor, path: path, isDirectory: true)
    }
}

/// Checked wrappers of the system calls that are not injectable.
enum Syscall {
    /// Mode of every file and directory the broker creates.
    static let fileMode: mode_t = 0o644
    static let directoryMode: mode_t = 0o755

    /// Opens `path` with `flags` (O_CLOEXEC is added).
    static func open(_ path: String, _ flags: Int32) throws(StorageError) -> Int32 {
        while true {
            let descriptor = Glibc.open(path, flags | O_CLOEXEC, fileMode)
            if descriptor >= 0 { return descriptor }
            let error = Glibc.errno
            if error != EINTR { throw StorageError.systemCall("open of", path, errno: error) }
        }
    }

    /// Closes a descriptor. Errors are ignored: on Linux the descriptor is released anyway, and
    /// durability is the business of the sync calls.
    static func close(_ descriptor: Int32) {
        _ = Glibc.close(descriptor)
    }

    /// Reads up to `buffer.count` bytes at `offset`, repeating short reads; returns fewer bytes
    /// only at end of file.
    static func read(_ descriptor: Int32, path: String, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StorageError) -> Int {
        var done = 0
        while done < buffer.count {
            let count = Glibc.pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if count < 0 {
                let error = Glibc.errno
                if error == EINTR { continue }
                throw StorageError.systemCall("read from", path, errno: error)
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Reads the whole file at `path`; nil if it does not exist.
    static func readFile(_ path: String) throws(StorageError) -> [UInt8]? {
        let descriptor: Int32
        do throws(StorageError) {
            descriptor = try open(path, O_RDONLY)
        } catch where error.errno == ENOENT {
            return nil
        }
        defer { close(descriptor) }
        let size = try fileSize(descriptor, path: path)
        var bytes = [UInt8](repeating: 0, count: size)
        let count = try withMutableBytes(of: &bytes) { (buffer) throws(StorageError) in try read(descriptor, path: path, into: buffer, at: 0) }
        return Array(bytes[..<count])
    }

    /// The size of an open file.
    static func fileSize(_ descriptor: Int32, path: String) throws(StorageError) -> Int {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw StorageError.systemCall("stat of", path, errno: Glibc.errno) }
        return Int(status.st_size)
    }

    /// True if `path` names a directory (following symbolic links).
    static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates `path` and its missing parents, like `mkdir -p`.
    static func makeDirectories(_ path: String) throws(StorageError) {
        if isDirectory(path) { return }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]))
        }
        if mkdir(path, directoryMode) != 0 {
            let error = Glibc.errno
            if error != EEXIST || !isDirectory(path) { throw StorageError.systemCall("mkdir of", path, errno: error) }
        }
    }

    /// Names in a directory, without "." and "..".
    static func listDirectory(_ path: String) throws(StorageError) -> [String] {
        guard let directory = opendir(path) else { throw StorageError.systemCall("listing of", path, errno: Glibc.errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func rename(_ path: String, to newPath: String) throws(StorageError) {
        guard Glibc.rename(path, newPath) == 0 else { throw StorageError.systemCall("rename to \(newPath) of", path, errno: Glibc.errno) }
    }

    static func unlink(_ path: String) throws(StorageError) {
        guard Glibc.unlink(path) == 0 else { throw StorageError.systemCall("unlink of", path, errno: Glibc.errno) }
    }

    /// Unlinks `path` unless it is already gone; returns whether it was there.
    @discardableResult
    static func unlinkIfPresent(_ path: String) throws(StorageError) -> Bool {
        if Glibc.unlink(path) == 0 { return true }
        let error = Glibc.errno
        guard error == ENOENT else { throw StorageError.systemCall("unlink of", path, errno: error) }
        return false
    }

    /// Takes an exclusive `flock` without waiting; false if another open file description holds it.
    static func tryLockExclusive(_ descriptor: Int32, path: String) throws(StorageError) -> Bool {
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let error = Glibc.errno
            if error == EWOULDBLOCK { return false }
            if error != EINTR { throw StorageError.systemCall("flock of", path, errno: error) }
        }
        return true
    }
}

/// `Array.withUnsafeBytes` with a typed error (the standard library's version rethrows `any Error`).
func withBytes<Result>(of bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(StorageError) -> Result) throws(StorageError) -> Result {
    try bytes.withUnsafeBytes { buffer in Swift.Result { () throws(StorageError) in try body(buffer) } }.get()
}

/// `Array.withUnsafeMutableBytes` with a typed error.
func withMutableBytes<Result>(
    of bytes: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(StorageError) -> Result
) throws(StorageError) -> Result {
    try bytes.withUnsafeMutableBytes { buffer in Swift.Result { () throws(StorageError) in try body(buffer) } }.get()
}
