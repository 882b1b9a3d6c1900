import Foundation
import Glibc
import Logging
import SpoolWire

/// The broker's data directory: its lock, topic metadata and partition logs.
///
/// ```
/// <data>/@spoold.lock                        exclusive flock while a broker runs; holds its pid
/// <data>/@clean-shutdown                     present only while no broker runs after a clean stop
/// <data>/<topic>/topic.json                  {"partitions": N, "settings": {…}}, replaced atomically
/// <data>/<topic>/<partition>/…               one PartitionLog per partition
/// <data>/@offsets/…                          the consumer groups' OffsetStore
/// <data>/@deleted-<topic>-<n>/…               a deleted topic's directory, removed in the background
/// ```
/// Invariants: while open, this process holds the exclusive lock, so no other broker writes
/// here; a topic exists exactly when its `topic.json` does (it is written last, atomically, after
/// the partition directories); names starting with `@` belong to the broker and are never topics
/// (a ``TopicName`` cannot start with `@`).
///
/// Not thread-safe: owned by the broker's network loop thread.
public final class DataDirectory {
    /// File holding the lock; a name no topic can have.
    static let lockFileName = "@spoold.lock"
    /// Prefix of every broker-owned name in the data directory.
    static let reservedPrefix = "@"
    /// Written after a clean stop; its absence at open means every log must be verified in full.
    static let cleanShutdownFileName = "@clean-shutdown"
    static let topicMetadataFileName = "topic.json"
    /// Directory of the ``OffsetStore``; a name no topic can have.
    static let offsetsDirectoryName = "@offsets"
    /// Prefix a deleted topic's directory is renamed to; a name no topic can have.
    static let deletedPrefix = "@deleted-"
    /// Most partitions a topic may have (at least 1).
    public static let maxPartitions: Int32 = 10_000
    private static let partitionCountRange: ClosedRange<Int32> = 1...maxPartitions

    /// The data directory.
    public let path: String
    /// The descriptors of every partition log opened here (``openPartition(_:partition:configuration:)``).
    public let openFiles: OpenFileCache
    private let logger: Logger
    private let io: FileIO
    private var lockDescriptor: Int32?
    /// True if the previous broker stopped cleanly (its marker was found and removed at open), so
    /// partitions open with ``PartitionLog/OpenMode/afterCleanShutdown``.
    public let openedAfterCleanShutdown: Bool

    /// Creates `path` if missing and takes an exclusive `flock` on `<path>/@spoold.lock`, writing
    /// this process's pid inside. Throws ``StorageError/Code/locked`` ("data directory /x is in use
    /// by another spoold (pid 123)") while another broker, or another `DataDirectory` of this
    /// process, holds it: the lock belongs to an open file description.
    ///
    /// The partition logs opened here share one ``OpenFileCache`` of `maxOpenFiles` descriptors
    /// (default: ``OpenFileCache/defaultCapacity``).
    public convenience init(path: String, maxOpenFiles: Int = OpenFileCache.defaultCapacity, logger: Logger) throws(StorageError) {
        try self.init(path: path, maxOpenFiles: maxOpenFiles, logger: logger, io: .system)
    }

    /// Opens the directory with every write and sync going through `io` (for fault injection),
    /// including those of the partition logs it opens.
    @_spi(Testing) public init(path: String, maxOpenFiles: Int = OpenFileCache.defaultCapacity, logger: Logger,
                               io: FileIO) throws(StorageError) {
        self.path = path
        self.logger = logger
        self.io = io
        openFiles = OpenFileCache(capacity: maxOpenFiles)
        try Syscall.makeDirectories(path)
        let lockPath = "\(path)/\(Self.lockFileName)"
        let descriptor = try Syscall.open(lockPath, O_RDWR | O_CREAT)
        do throws(StorageError) {
            guard try Syscall.tryLockExclusive(descriptor, path: lockPath) else {
                let owner = (try? Syscall.readFile(lockPath)).flatMap { $0 }
                    .flatMap { Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }
                throw StorageError(.locked, "data directory \(path) is in use by another spoold (pid \(owner.map(String.init) ?? "unknown"))")
            }
            try io.truncate(descriptor, path: lockPath, to: 0)
            try withBytes(of: Array("\(getpid())\n".utf8)) { (bytes) throws(StorageError) in
                try io.write(descriptor, path: lockPath, at: 0, bytes)
            }
            // The marker goes before anything can be written, so a crash from now on means a full verification.
            openedAfterCleanShutdown = try Syscall.unlinkIfPresent("\(path)/\(Self.cleanShutdownFileName)")
            if openedAfterCleanShutdown { try io.syncDirectory(path) }
            for name in try Syscall.listDirectory(path) where name.hasPrefix(Self.deletedPrefix) {
                BackgroundDeleter.removeTree("\(path)/\(name)", logger: logger)
            }
        } catch {
            Syscall.close(descriptor)
            throw error
        }
        lockDescriptor = descriptor
    }

    /// Records that every partition log was closed with ``PartitionLog/closeCleanly()`` after its
    /// last sync, so the next open may skip the full verification. Call it last, after closing
    /// every log; it writes the marker atomically and durably.
    public func markCleanShutdown() throws(StorageError) {
        try io.writeAtomically(Array("clean\n".utf8), directory: path, name: Self.cleanShutdownFileName)
    }

    deinit { close() }

    /// Releases the lock. Idempotent; also done when the object goes away.
    public func close() {
        guard let descriptor = lockDescriptor else { return }
        lockDescriptor = nil
        // Closing the only descriptor of the open file description releases the flock.
        Syscall.close(descriptor)
    }

    /// The topics on disk with their metadata. Skips `@` names; a directory whose name is not a
    /// valid topic name, or whose `topic.json` is missing or corrupt, is logged at warning and
    /// skipped. Throws only if the data directory cannot be listed.
    public func existingTopics() throws(StorageError) -> [TopicName: TopicMetadata] {
        var topics: [TopicName: TopicMetadata] = [:]
        for name in try Syscall.listDirectory(path) where !name.hasPrefix(Self.reservedPrefix) {
            let entryPath = "\(path)/\(name)"
            guard Syscall.isDirectory(entryPath) else {
                logger.warning("skipping a file that is not a topic directory", metadata: ["path": "\(entryPath)"])
                continue
            }
            let topic: TopicName
            do throws(WireError) {
                topic = try TopicName(name)
            } catch {
                logger.warning("skipping a directory that is not a topic", metadata: ["path": "\(entryPath)", "reason": "\(error.message)"])
                continue
            }
            do throws(StorageError) {
                topics[topic] = try readMetadata(topicDirectory: entryPath)
            } catch {
                logger.warning("skipping a topic whose metadata is unreadable", metadata: ["path": "\(entryPath)", "reason": "\(error.message)"])
            }
        }
        return topics
    }

    private func readMetadata(topicDirectory: String) throws(StorageError) -> TopicMetadata {
        let metadataPath = "\(topicDirectory)/\(Self.topicMetadataFileName)"
        guard let bytes = try Syscall.readFile(metadataPath) else {
            throw StorageError(.notFound, "\(metadataPath) is missing")
        }
        guard let metadata = try? JSONDecoder().decode(TopicMetadata.self, from: Data(bytes)) else {
            throw StorageError(.corrupt, "\(metadataPath) is not {\"partitions\": N, \"settings\": {…}}")
        }
        guard Self.partitionCountRange.contains(metadata.partitions) else {
            throw StorageError(.corrupt, "\(metadataPath) says \(metadata.partitions) partitions, outside \(Self.partitionCountRange)")
        }
        do throws(StorageError) {
            _ = try LogSettings.apply(metadata.settings, to: LogConfiguration())
        } catch {
            throw StorageError(.corrupt, "\(metadataPath): \(error.message)")
        }
        return metadata
    }

    /// Creates the topic: its partition directories, then `topic.json`, atomically (temporary file,
    /// fsync, rename, fsync of the directories), so a crash leaves either no topic or a whole one.
    /// Throws ``StorageError/Code/invalidArgument`` if `partitions` is outside 1...``maxPartitions``
    /// or a setting is not valid (see ``LogSettings``), and ``StorageError/Code/alreadyExists`` if
    /// the topic exists.
    public func createTopic(_ name: TopicName, _ metadata: TopicMetadata) throws(StorageError) {
        guard Self.partitionCountRange.contains(metadata.partitions) else {
            throw StorageError(.invalidArgument, "topic \(name) cannot have \(metadata.partitions) partitions; allowed: \(Self.partitionCountRange)")
        }
        _ = try LogSettings.apply(metadata.settings, to: LogConfiguration())
        let topicDirectory = "\(path)/\(name.rawValue)"
        guard try Syscall.readFile("\(topicDirectory)/\(Self.topicMetadataFileName)") == nil else {
            throw StorageError(.alreadyExists, "topic \(name) exists in \(path)")
        }
        for partition in 0..<metadata.partitions {
            try Syscall.makeDirectories("\(topicDirectory)/\(partition)")
        }
        try writeMetadata(metadata, topicDirectory: topicDirectory)
        try io.syncDirectory(path)
    }

    /// Deletes a topic's directory: renames `<data>/<topic>` to `<data>/@deleted-<topic>-<n>` and
    /// syncs the data directory, so from then on the topic is gone (also after a crash) and its
    /// name is free; the renamed tree is removed in the background, and a leftover one when the
    /// directory next opens. Close the topic's partition logs first. Throws
    /// ``StorageError/Code/notFound`` if the topic has no directory, and leaves it whole if the
    /// rename or the sync fails.
    public func deleteTopic(_ name: TopicName) throws(StorageError) {
        let topicDirectory = "\(path)/\(name.rawValue)"
        guard Syscall.isDirectory(topicDirectory) else { throw StorageError(.notFound, "topic \(name) has no directory in \(path)") }
        let retired = "\(path)/\(Self.deletedPrefix)\(name.rawValue)-\(UInt64.random(in: 0 ... .max))"
        try Syscall.rename(topicDirectory, to: retired)
        try io.syncDirectory(path)
        BackgroundDeleter.removeTree(retired, logger: logger)
    }

    /// Replaces an existing topic's settings in its `topic.json` (atomically). Throws
    /// ``StorageError/Code/invalidArgument`` for a bad setting, ``StorageError/Code/notFound`` if
    /// the topic does not exist.
    public func setSettings(_ settings: [String: String], of name: TopicName) throws(StorageError) {
        _ = try LogSettings.apply(settings, to: LogConfiguration())
        let topicDirectory = "\(path)/\(name.rawValue)"
        var metadata = try readMetadata(topicDirectory: topicDirectory)
        metadata.settings = settings
        try writeMetadata(metadata, topicDirectory: topicDirectory)
    }

    private func writeMetadata(_ metadata: TopicMetadata, topicDirectory: String) throws(StorageError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let json = try? encoder.encode(metadata) else {
            throw StorageError(.invalidArgument, "cannot encode the metadata of \(topicDirectory)")
        }
        try io.writeAtomically(Array(json) + [UInt8(ascii: "\n")], directory: topicDirectory, name: Self.topicMetadataFileName)
    }

    /// Opens (and recovers) one partition's log, `<data>/<topic>/<partition>`, verifying it in
    /// full unless the previous broker stopped cleanly. Throws
    /// ``StorageError/Code/notFound`` if the topic has no directory and
    /// ``StorageError/Code/invalidArgument`` for a negative partition.
    public func openPartition(_ topic: TopicName, partition: Int32, configuration: LogConfiguration) throws(StorageError) -> PartitionLog {
        guard partition >= 0 else { throw StorageError(.invalidArgument, "partition \(partition) of topic \(topic) is negative") }
        let topicDirectory = "\(path)/\(topic.rawValue)"
        guard Syscall.isDirectory(topicDirectory) else {
            throw StorageError(.notFound, "topic \(topic) has no directory in \(path)")
        }
        var logger = logger
        logger[metadataKey: "topic"] = "\(topic)"
        logger[metadataKey: "partition"] = "\(partition)"
        return try PartitionLog(directory: "\(topicDirectory)/\(partition)", configuration: configuration,
                                mode: openedAfterCleanShutdown ? .afterCleanShutdown : .afterCrash, logger: logger, io: io,
                                openFiles: openFiles)
    }
}

extension DataDirectory {
    /// Opens (and recovers) the consumer groups' ``OffsetStore`` in `<data>/@offsets`, creating it
    /// if missing; its writes and syncs go through this directory's file I/O. Logs with `logger`,
    /// or with the directory's own logger when nil.
    public func openOffsetStore(logger: Logger? = nil,
                                compactionBytes: Int = OffsetStore.defaultCompactionBytes) throws(StorageError) -> OffsetStore {
        try OffsetStore(directory: "\(path)/\(Self.offsetsDirectoryName)", logger: logger ?? self.logger, io: io,
                        compactionBytes: compactionBytes)
    }
}

/// What `topic.json` holds: the partition count and the topic's own settings, which override
/// the broker's defaults (keys and values as in ``LogSettings``).
public struct TopicMetadata: Codable, Sendable, Hashable {
    /// Number of partitions, 1...``DataDirectory/maxPartitions``; never changes.
    public var partitions: Int32
    /// Settings of this topic that differ from the broker's defaults.
    public var settings: [String: String]

    /// Creates metadata.
    public init(partitions: Int32, settings: [String: String] = [:]) {
        self.partitions = partitions
        self.settings = settings
    }

    private enum CodingKeys: String, CodingKey { case partitions, settings }

    /// Reads `{"partitions": N}` (the first format) as well as `{"partitions": N, "settings": {…}}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        partitions = try container.decode(Int32.self, forKey: .partitions)
        settings = try container.decodeIfPresent([String: String].self, forKey: .settings) ?? [:]
    }
}
