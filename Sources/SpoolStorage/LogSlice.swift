/// A range of whole batches in one segment file, found by ``PartitionLog/read(from:maxBytes:endOffset:)``.
///
/// The slice holds the file open, so it stays readable after the log rolls, closes or is dropped.
/// Sendable: it may be read on any thread (`pread` does not move a shared file position).
/// Hashable: two slices are equal when they cover the same bytes of the same open file.
public struct LogSlice: Sendable, Hashable {
    let file: FileHandle
    /// Byte position of the first batch in the file.
    let position: Int
    /// Bytes in the slice: whole batches only.
    public let length: Int
    /// baseOffset of the first batch in the slice.
    public let firstOffset: Int64
    /// The offset after the last record of the slice: where the next fetch continues.
    public let nextOffset: Int64

    public static func == (left: LogSlice, right: LogSlice) -> Bool {
        left.file === right.file && left.position == right.position && left.length == right.length
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(file))
        hasher.combine(position)
        hasher.combine(length)
    }

    /// Copies the slice's bytes into the start of `buffer` with `pread`; returns `length`.
    /// Throws ``StorageError/Code/invalidArgument`` if `buffer` is smaller than `length`, and
    /// ``StorageError/Code/io`` if the read fails or the file is shorter than the slice.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int {
        guard buffer.count >= length else {
            throw StorageError(.invalidArgument, "buffer of \(buffer.count) bytes is too small for a slice of \(length) bytes of \(file.path)")
        }
        let count = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<length]), at: position)
        guard count == length else {
            throw StorageError(.io, "read from \(file.path) ended at byte \(position + count); the slice ends at \(position + length)")
        }
        return count
    }

    /// Copies the bytes of `slices`, one after another, into the start of `buffer` (which must
    /// hold their total length); returns that length. Throws as ``read(into:)`` does.
    public static func read(_ slices: [LogSlice], into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int {
        var done = 0
        for slice in slices {
            done += try slice.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
        }
        return done
    }
}
