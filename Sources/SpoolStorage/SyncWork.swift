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
}
