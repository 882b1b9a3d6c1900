import Glibc

/// A failure that stops the benchmark, with a one-line message for the user.
struct BenchError: Error, CustomStringConvertible {
    /// What went wrong.
    let message: String

    /// Creates an error saying `message`.
    init(_ message: String) {
        self.message = message
    }

    /// An error for a failed system call, with the text of the current `errno`.
    static func posix(_ what: String, path: String) -> BenchError {
        BenchError("\(what) \(path): \(String(cString: strerror(errno)))")
    }

    /// The message.
    var description: String { message }
}
