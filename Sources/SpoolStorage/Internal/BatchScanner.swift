import SpoolWire

/// Reads the batches of a segment one after another through a buffer, for recovery, lookups and
/// timestamp searches. Checks what it reads and never trusts a length before it fits.
///
/// Not thread-safe: a short-lived local of one call.
final class BatchScanner {
    /// What lies at a position.
    enum Step {
        /// A batch; with `verify`, checked in full (checksum, records).
        case batch(RecordBatch.Header)
        /// The position is the end.
        case end
        /// The bytes there are not a whole valid batch; the reason names the byte and the fault.
        case invalid(String)
    }

    /// Buffer size for recovery scans, which read whole files.
    static let recoveryChunkSize = 1 << 20
    /// Buffer size for lookups, which walk at most about one index interval of headers.
    static let lookupChunkSize = 16 << 10

    private let file: FileHandle
    /// Bytes of the file that belong to the log.
    private let end: Int
    private var buffer: UnsafeMutableRawBufferPointer
    /// File position of `buffer[0]`.
    private var bufferStart = 0
    /// Bytes of `buffer` holding file data.
    private var bufferCount = 0

    init(file: FileHandle, end: Int, chunkSize: Int) {
        self.file = file
        self.end = end
        buffer = .allocate(byteCount: chunkSize, alignment: MemoryLayout<UInt64>.alignment)
    }

    deinit { buffer.deallocate() }

    /// The batch starting at `position`.
    func batch(at position: Int, verify: Bool) throws(StorageError) -> Step {
        let remaining = end - position
        guard remaining > 0 else { return .end }
        guard remaining >= RecordBatch.headerSize else {
            return .invalid("torn batch at byte \(position): \(remaining) bytes remain, a batch header needs \(RecordBatch.headerSize)")
        }
        let header: RecordBatch.Header
        let headerBytes = try bytes(at: position, count: RecordBatch.headerSize)
        do throws(WireError) {
            header = try RecordBatch.readHeader(headerBytes)
        } catch {
            return .invalid("invalid batch header at byte \(position): \(error.message)")
        }
        guard header.totalSize <= remaining else {
            return .invalid("torn batch at byte \(position): batch length says \(header.totalSize) bytes, \(remaining) remain")
        }
        if verify {
            let batchBytes = try bytes(at: position, count: header.totalSize)
            do throws(WireError) {
                try RecordBatch.validate(batchBytes)
            } catch {
                return .invalid("corrupt batch at byte \(position): \(error.message)")
            }
        }
        return .batch(header)
    }

    /// `count` bytes of the file at `position` (which must lie within `end`), read if not buffered.
    func bytes(at position: Int, count: Int) throws(StorageError) -> UnsafeRawBufferPointer {
        if position < bufferStart || position + count > bufferStart + bufferCount {
            if count > buffer.count {
                buffer.deallocate()
                buffer = .allocate(byteCount: count, alignment: MemoryLayout<UInt64>.alignment)
            }
            bufferStart = position
            let wanted = min(buffer.count, end - position)
            bufferCount = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<wanted]), at: position)
            guard bufferCount >= count else {
                throw StorageError(.io, "read from \(file.path) ended at byte \(position + bufferCount); the log has \(end) bytes")
            }
        }
        return UnsafeRawBufferPointer(rebasing: buffer[(position - bufferStart)..<(position - bufferStart + count)])
    }
}
