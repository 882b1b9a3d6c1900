/// Why a server could not start or stopped abnormally. One line, naming the endpoint or path.
public struct SpoolServerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    /// The underlying error (a storage or ZeroMQ error), if any.
    public var cause: (any Error & Sendable)?

    public init(_ message: String, cause: (any Error & Sendable)? = nil) {
        self.message = message
        self.cause = cause
    }

    public var description: String { message }
}
