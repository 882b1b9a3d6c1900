/// The files one sync must cover, from ``PartitionLog/takeSyncWork()``: after each file had an
/// fdatasync (directories an fsync), everything in the log up to ``endOffset`` is durable.
/// Run it with a ``GroupCommitFlusher``.
///
/// Sendable: it holds shared files and, until it is dropped, the descriptors the writes went
/// through, so the files are synced through them (never closed before).
public struct SyncWork: Sendable {
    /// Offsets below this are durable once the work has run.
    public var endOffset: Int64
    /// Files to sync, each once, the partition directory last.
    let files: [any SyncableFile]
    /// The descriptors the writes went through, kept open while the work exists.
    let writtenDescriptors: [FileHandle]

    init(endOffset: Int64, files: [any SyncableFile], writtenDescriptors: [FileHandle] = []) {
        self.endOffset = endOffset
        self.files = files
        self.writtenDescriptors = writtenDescriptors
    }

    /// The work that covers both this and `other`: every file of either, once, and the larger end.
    public func merged(with other: SyncWork) -> SyncWork {
        var files = self.files
        for file in other.files where !files.contains(where: { $0 === file }) { files.append(file) }
        return SyncWork(endOffset: max(endOffset, other.endOffset), files: files,
                        writtenDescriptors: writtenDescriptors + other.writtenDescriptors)
    }
}

/// A file or directory that ``SyncWork`` syncs: an open ``FileHandle`` or a ``CachedFile``.
protocol SyncableFile: AnyObject, Sendable {
    var path: String { get }
    /// `fdatasync` for a file, `fsync` for a directory.
    func sync() throws(StorageError)
}

extension FileHandle: SyncableFile {}
extension CachedFile: SyncableFile {}
