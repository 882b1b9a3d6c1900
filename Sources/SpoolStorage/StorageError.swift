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

    /// The error for a failed system call: "`operation` `path` failed: `strerror(errno)`".
    static func systemCall(_ operation: String, _ path: String, errno: Int32) -> StorageError {
        StorageError(.io, "\(operation) \(path) failed: \(String(cString: strerror(errno)))", errno: errno)
    }
}
