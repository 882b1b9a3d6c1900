import Glibc

/// An error from the storage layer: what failed, on which path or offset, and the `errno` when a
/// system call failed. The one error type of `SpoolStorage`.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. An open set: compare with the static members, and keep a
    /// default branch when switching, since later versions may add codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: Hashable, Sendable {
            case io, corrupt, offsetOutOfRange, locked, invalidArgument, notFound, alreadyExists, closed
        }
        private let kind: Kind

        /// A system call failed (disk full, I/O error, permissions); see ``StorageError/errno``.
        public static let io = Code(kind: .io)
        /// Stored bytes do not parse where they must (a batch header at an indexed position).
        public static let corrupt = Code(kind: .corrupt)
        /// A read asked for an offset below the log start or above the log end.
        public static let offsetOutOfRange = Code(kind: .offsetOutOfRange)
        /// Another process holds the data directory's lock.
        public static let locked = Code(kind: .locked)
        /// An argument is outside its allowed range (partition count, malformed batch).
        public static let invalidArgument = Code(kind: .invalidArgument)
        /// A topic or file that must exist does not.
        public static let notFound = Code(kind: .notFound)
        /// A topic that is being created exists already.
        public static let alreadyExists = Code(kind: .alreadyExists)
        /// The object was closed or shut down before the call.
        public static let closed = Code(kind: .closed)

        /// A stable lower-case name, used in descriptions and logs.
        public var description: String {
            switch kind {
            case .io: "io"
            case .corrupt: "corrupt"
            case .offsetOutOfRange: "offset out of range"
            case .locked: "locked"
            case .invalidArgument: "invalid argument"
            case .notFound: "not found"
            case .alreadyExists: "already exists"
            case .closed: "closed"
            }
        }
    }

    /// The kind of failure.
    public var code: Code
    /// One line naming the path or offset and what happened, for example
    /// "write to /d/orders/0/00000000000000000000.log failed: No space left on device".
    public var message: String
    /// The `errno` of the system call that failed, if one did.
    public var errno: Int32?

    /// Creates an error; `errno` is set only when a system call failed.
    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    /// "code: message", plus the errno number when there is one.
    public var description: String {
        "\(code): \(message)" + (errno.map { " (errno \($0))" } ?? "")
    }

    /// The error for a failed system call: "`operation` `path` failed: `strerror(errno)`", or for
    /// a fault of the disk (see ``diskFault``) the fault in words first, for example "the disk is
    /// full (4.0 KiB free on /data): write to /data/orders/0/….log failed: No space left on device".
    static func systemCall(_ operation: String, _ path: String, errno: Int32) -> StorageError {
        let failure = "\(operation) \(path) failed: \(String(cString: strerror(errno)))"
        guard let fault = DiskFault(errno: errno) else { return StorageError(.io, failure, errno: errno) }
        return StorageError(.io, "\(fault.explanation(path: path)): \(failure)", errno: errno)
    }

    /// The fault of the disk this error reports (a full disk, a quota, a size limit, a read-only
    /// filesystem, a failed write), or nil for any other error. Writes that failed this way
    /// succeed again once the cause is gone (space freed, the filesystem writable again).
    public var diskFault: DiskFault? { errno.flatMap(DiskFault.init(errno:)) }

    /// True when the disk has no room for the write: full, over quota, or past the file-size limit.
    public var isOutOfSpace: Bool { [.full, .quota, .fileTooLarge].contains(diskFault) }

    /// For a recovery report: `byteCount` bytes were cut without the copy this error prevented.
    func cutWithoutCopy(of byteCount: Int) -> String {
        "the \(byteCount) cut bytes could not be copied aside (\(message))"
    }
}

/// Why the disk refused a write, from the `errno` of the failed call. An open set: compare with
/// the static members, and keep a default branch when switching, since later versions may add
/// faults.
public struct DiskFault: Hashable, Sendable, CustomStringConvertible {
    private enum Kind: Hashable, Sendable {
        case full, quota, fileTooLarge, readOnly, failed
    }
    private let kind: Kind

    /// `ENOSPC`: the filesystem has no free blocks (or inodes) left.
    public static let full = DiskFault(kind: .full)
    /// `EDQUOT`: the user's disk quota is used up.
    public static let quota = DiskFault(kind: .quota)
    /// `EFBIG`: the file would pass the process's file-size limit (`RLIMIT_FSIZE`) or the
    /// filesystem's largest file.
    public static let fileTooLarge = DiskFault(kind: .fileTooLarge)
    /// `EROFS`: the filesystem is mounted (or was remounted, after errors) read-only.
    public static let readOnly = DiskFault(kind: .readOnly)
    /// `EIO`: the device failed the write or the sync.
    public static let failed = DiskFault(kind: .failed)

    private init(kind: Kind) { self.kind = kind }

    /// The fault for `errno`, or nil if it is not one of the above.
    public init?(errno: Int32) {
        switch errno {
        case ENOSPC: kind = .full
        case EDQUOT: kind = .quota
        case EFBIG: kind = .fileTooLarge
        case EROFS: kind = .readOnly
        case EIO: kind = .failed
        default: return nil
        }
    }

    /// A few words: "the disk is full", "the disk quota is exhausted", ….
    public var description: String {
        switch kind {
        case .full: "the disk is full"
        case .quota: "the disk quota is exhausted"
        case .fileTooLarge: "the file size limit is reached"
        case .readOnly: "the filesystem is read-only"
        case .failed: "the disk failed a write"
        }
    }

    /// The description with what helps the reader act: for a full disk or a quota, the space
    /// still free on the filesystem holding `path` (read with `statvfs`).
    func explanation(path: String) -> String {
        switch kind {
        case .full, .quota:
            guard let free = Self.freeBytes(near: path) else { return description }
            return "\(description) (\(ByteCount(free)) free on \(Self.directory(of: path)))"
        case .fileTooLarge:
            return "\(description) (RLIMIT_FSIZE of the process, see `ulimit -f`, or the filesystem's largest file)"
        case .readOnly, .failed:
            return description
        }
    }

    /// Bytes an unprivileged writer may still use on the filesystem holding `path`'s directory.
    private static func freeBytes(near path: String) -> Int64? {
        var status = statvfs()
        guard statvfs(directory(of: path), &status) == 0 else { return nil }
        return Int64(status.f_bavail) * Int64(status.f_frsize)
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// A byte count in the largest binary unit that keeps it at least 1: "512 B", "4.0 KiB", "1.5 GiB".
struct ByteCount: CustomStringConvertible {
    let bytes: Int64

    init(_ bytes: Int64) { self.bytes = bytes }

    var description: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        guard unit > 0 else { return "\(bytes) B" }
        let tenths = (value * 10).rounded() / 10
        return "\(tenths) \(units[unit])"
    }
}
