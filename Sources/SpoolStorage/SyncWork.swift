/// The files one sync must cover, from ``PartitionLog/takeSyncWork()``: after each file had an
/// fdatasync (directories an fsync), everything in the log up to ``endOffset`` is durable.
/// Run it with a ``GroupCommitFlusher``.
///
/// Sendable: it holds shared, immutable file handles that stay open as long as the work exists.
public struct SyncWork: Sendable {
    /// Offsets below this are durable once the work has run.
    public var endOffset: Int64
    /// Files to sync, each once, the partition directory last.
    let files: [FileHandle]

    /// The work that covers both this and `other`: every file of either, once, and the larger end.
    public func merged(with other: SyncWork) -> SyncWork {
        var files = self.files
        for file in other.files where !files.contains(where: { $0 === file }) { files.append(file) }
        return SyncWork(endOffset: max(endOffset, other.endOffset), files: files)
    }
}
