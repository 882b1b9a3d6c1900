import Foundation
import Glibc
import Logging
import SpoolWire

/// The broker's data directory: its lock, topic metadata and partition logs.
///
/// ```
/// <data>/@spoold.lock                        exclusive flock while a broker runs; holds its pid
/// <data>/<topic>/topic.json                  {"partitions": N}, replaced atomically
/// <data>/<topic>/<partition>/…               one PartitionLog per partition
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
    static let topicMetadataFileName = "topic.json"
    /// Most partitions a topic may have (at least 1).
    public static let maxPartitions: Int32 = 10_000
    private static let partitionCountRange: ClosedRange<Int32> = 1...maxPartitions

    /// The data directory.
    public let path: String
    private let logger: Logger
    private let io: FileIO
    private var lockDescriptor: Int32?

    /// `topic.json`, as read.
    private struct TopicMetadata: Decodable {
        var partitions: Int32
    }

    /// Creates `path` if missing and takes an exclusive `flock` on `<path>/@spoold.lock`, writing
    /// this process's pid inside. Throws ``StorageError/Code/locked`` ("data directory /x is in use
    /// by another spoold (pid 123)") while another broker, or another `DataDirectory` of this
    /// process, holds it: the lock belongs to an open file description.
    public convenience init(path: String, logger: Logger) throws(StorageError) {
        try self.init(path: path, logger: logger, io: .system)
    }

    /// Opens the directory with every write and sync going through `io` (for fault injection),
    /// including those of the partition logs it opens.
    @_spi(Testing) public init(path: String, logger: Logger, io: FileIO) throws(StorageError) {
        self.path = path
        self.logger = logger
        self.io = io
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
        } catch {
            Syscall.close(descriptor)
            throw error
        }
        lockDescriptor = descriptor
    }

    deinit { close() }

    /// Releases the lock. Idempotent; also done when the object goes away.
    public func close() {
        guard let descriptor = lockDescriptor else { return }
        lockDescriptor = nil
        // Closing the only descriptor of the open file description releases the flock.
        Syscall.close(descriptor)
    }

    /// The topics on disk with their partition counts. Skips `@` names; a directory whose name is
    /// not a valid topic name, or whose `topic.json` is missing or corrupt, is logged at warning
    /// and skipped. Throws only if the data directory cannot be listed.
    public func existingTopics() throws(StorageError) -> [TopicName: Int32] {
        var topics: [TopicName: Int32] = [:]
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
                topics[topic] = try readPartitionCount(topicDirectory: entryPath)
            } catch {
                logger.warning("skipping a topic whose metadata is unreadable", metadata: ["path": "\(entryPath)", "reason": "\(error.message)"])
            }
        }
        return topics
    }

    private func readPartitionCount(topicDirectory: String) throws(StorageError) -> Int32 {
        let metadataPath = "\(topicDirectory)/\(Self.topicMetadataFileName)"
        guard let bytes = try Syscall.readFile(metadataPath) else {
            throw StorageError(.notFound, "\(metadataPath) is missing")
        }
        guard let metadata = try? JSONDecoder().decode(TopicMetadata.self, from: Data(bytes)) else {
            throw StorageError(.corrupt, "\(metadataPath) is not {\"partitions\": N}")
        }
        guard Self.partitionCountRange.contains(metadata.partitions) else {
            throw StorageError(.corrupt, "\(metadataPath) says \(metadata.partitions) partitions, outside \(Self.partitionCountRange)")
        }
        return metadata.partitions
    }

    /// Creates the topic: its partition directories, then `topic.json`, atomically (temporary file,
    /// fsync, rename, fsync of the directories), so a crash leaves either no topic or a whole one.
    /// Throws ``StorageError/Code/invalidArgument`` if `partitions` is outside
    /// 1...``maxPartitions`` and ``StorageError/Code/alreadyExists`` if the topic exists.
    public func createTopic(_ name: TopicName, partitions: Int32) throws(StorageError) {
        guard Self.partitionCountRange.contains(partitions) else {
            throw StorageError(.invalidArgument, "topic \(name) cannot have \(partitions) partitions; allowed: \(Self.partitionCountRange)")
        }
        let topicDirectory = "\(path)/\(name.rawValue)"
        guard try Syscall.readFile("\(topicDirectory)/\(Self.topicMetadataFileName)") == nil else {
            throw StorageError(.alreadyExists, "topic \(name) exists in \(path)")
        }
        for partition in 0..<partitions {
            try Syscall.makeDirectories("\(topicDirectory)/\(partition)")
        }
        let json = Array("{\"partitions\": \(partitions)}\n".utf8)
        try io.writeAtomically(json, directory: topicDirectory, name: Self.topicMetadataFileName)
        try io.syncDirectory(path)
    }

    /// Opens (and recovers) one partition's log, `<data>/<topic>/<partition>`. Throws
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
        return try PartitionLog(directory: "\(topicDirectory)/\(partition)", configuration: configuration, logger: logger, io: io)
    }
}
