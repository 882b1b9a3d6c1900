import Glibc
import Synchronization

/// The open descriptors of the segment, index, key-index and partition-directory files of every
/// log that shares it, bounded: a file is opened when first used and closed when the cache
/// needs room for another (the least recently used first, by the CLOCK approximation of LRU), so
/// an idle partition holds no descriptor and a broker serves far more partitions than its
/// open-file limit allows descriptors.
///
/// Guarantees: at most ``capacity`` descriptors are held by the cache itself. A descriptor
/// someone still uses stays open after the cache lets it go and is closed when they drop it: a
/// fetch's ``LogSlice``, and ``SyncWork`` (a log keeps each descriptor it wrote through, under
/// `fsync: always` and `interval`, until the sync that covers the write has run, so no file is
/// closed with writes not yet synced). When an open fails because the process is out of
/// descriptors (EMFILE, ENFILE), the cache closes half of what it holds and tries once more.
///
/// Thread-safe: the broker's loop, the group-commit flusher and the log cleaner share one.
public final class OpenFileCache: Sendable {
    /// Most descriptors the cache holds open at once.
    public let capacity: Int
    private let state: Mutex<State>

    /// What the cache did so far.
    public struct Statistics: Sendable, Hashable {
        /// Descriptors the cache holds open now.
        public var open: Int
        /// Files opened (first uses and reopenings after an eviction).
        public var opens: Int
        /// Descriptors released to make room.
        public var evictions: Int
    }

    /// A cache holding at most `capacity` descriptors (at least 1); the default holds every file
    /// it is asked for.
    public init(capacity: Int = .max) {
        self.capacity = max(capacity, 1)
        state = Mutex(State())
    }

    /// Half the process's soft open-file limit now (at least 64): the other half stays for client
    /// connections, ZeroMQ's own descriptors, the offset store and files that fetches and syncs
    /// still hold after the cache let them go.
    public static var defaultCapacity: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 512 }
        return max(Int(clamping: limit.rlim_cur) / 2, 64)
    }

    /// Counts of open descriptors, opens and evictions.
    public var statistics: Statistics {
        state.withLock { Statistics(open: $0.slotOf.count, opens: $0.opens, evictions: $0.evictions) }
    }

    /// The open descriptor of `file`: the cached one, the one someone still holds, or a new one.
    func handle(for file: CachedFile) throws(StorageError) -> FileHandle {
        let id = ObjectIdentifier(file)
        let (handle, released) = try state.withLock { (state) throws(StorageError) -> (FileHandle, FileHandle?) in
            if let index = state.slotOf[id], let slot = state.slots[index] {
                state.slots[index]?.recentlyUsed = true
                return (slot.handle, nil)
            }
            let handle: FileHandle
            if let live = file.live {
                handle = live
            } else {
                handle = try state.open(file, flags: file.hasBeenOpened ? file.reopenFlags : file.firstOpenFlags)
                file.live = handle
                file.hasBeenOpened = true
            }
            return (handle, state.insert(Slot(owner: id, handle: handle, recentlyUsed: false), capacity: capacity))
        }
        withExtendedLifetime(released) {}  // closed here, outside the lock, unless someone still uses it
        return handle
    }

    /// The descriptor `file` has open now, if any, without opening one.
    func liveHandle(of file: CachedFile) -> FileHandle? {
        state.withLock { _ in file.live }
    }

    /// Lets go of `file`'s descriptor (the file is going away).
    func forget(_ id: ObjectIdentifier) {
        let released = state.withLock { state -> FileHandle? in
            guard let index = state.slotOf.removeValue(forKey: id) else { return nil }
            defer { state.slots[index] = nil }
            state.freeSlots.append(index)
            return state.slots[index]?.handle
        }
        withExtendedLifetime(released) {}
    }

    private struct Slot {
        var owner: ObjectIdentifier
        var handle: FileHandle
        /// Set at each use after the first, cleared as the clock hand passes: a slot is evicted
        /// when the hand finds it cleared, so a file used once (a recovery scan, one fetch of an
        /// old segment) goes before one used again and again.
        var recentlyUsed: Bool
    }

    private struct State {
        var slots: [Slot?] = []
        var slotOf: [ObjectIdentifier: Int] = [:]
        var freeSlots: [Int] = []
        var hand = 0
        var opens = 0
        var evictions = 0

        /// Opens `file`; when the process is out of descriptors, releases half of the slots and
        /// tries once more.
        mutating func open(_ file: CachedFile, flags: Int32) throws(StorageError) -> FileHandle {
            let handle: FileHandle
            do throws(StorageError) {
                handle = try FileHandle(opening: file.path, flags: flags, isDirectory: file.isDirectory, io: file.io)
            } catch where error.errno == EMFILE || error.errno == ENFILE {
                for _ in 0..<max(slotOf.count / 2, 1) {
                    guard let victim = evict() else { break }
                    freeSlots.append(victim.index)  // its descriptor closes here unless someone still uses it
                }
                handle = try FileHandle(opening: file.path, flags: flags, isDirectory: file.isDirectory, io: file.io)
            }
            opens += 1
            return handle
        }

        /// Puts `slot` in a free place, or in place of the slot the clock hand evicts when the
        /// cache is full; returns the evicted descriptor.
        mutating func insert(_ slot: Slot, capacity: Int) -> FileHandle? {
            var released: FileHandle?
            let index: Int
            if let free = freeSlots.popLast() {
                index = free
            } else if slots.count < capacity {
                index = slots.count
                slots.append(nil)
            } else {
                let victim = evict()!  // full, so some slot is taken
                (index, released) = (victim.index, victim.handle)
            }
            slots[index] = slot
            slotOf[slot.owner] = index
            return released
        }

        /// Advances the clock hand to the first taken slot not used since the hand last passed
        /// (clearing the marks it passes) and empties it; nil when no slot is taken.
        mutating func evict() -> (index: Int, handle: FileHandle)? {
            guard !slotOf.isEmpty else { return nil }
            while true {
                if hand >= slots.count { hand = 0 }
                defer { hand += 1 }
                guard let slot = slots[hand] else { continue }
                if slot.recentlyUsed {
                    slots[hand]?.recentlyUsed = false
                    continue
                }
                slots[hand] = nil
                slotOf[slot.owner] = nil
                evictions += 1
                return (hand, slot.handle)
            }
        }
    }
}

/// A file of a log that is opened on demand through an ``OpenFileCache``: its segment files,
/// index files, key-index runs and directory. Reads, writes and syncs take the descriptor from
/// the cache (reopening the file after an eviction).
///
/// Thread-safe: `live` and `hasBeenOpened` are read and written only under the cache's lock.
final class CachedFile: @unchecked Sendable {
    let path: String
    let isDirectory: Bool
    let io: FileIO
    let cache: OpenFileCache
    /// The flags of the first open.
    let firstOpenFlags: Int32
    /// The flags of a reopening: those of the first open without creating or truncating, so a
    /// file renamed away is never made again under its old name.
    let reopenFlags: Int32
    /// The descriptor open now, whether the cache or only a user holds it (guarded by the cache's lock).
    weak var live: FileHandle?
    /// Whether the file was opened once (guarded by the cache's lock).
    var hasBeenOpened = false

    /// `path`, opened with `flags` when first used, through `cache`.
    init(path: String, flags: Int32, isDirectory: Bool = false, io: FileIO, cache: OpenFileCache) {
        self.path = path
        self.isDirectory = isDirectory
        self.io = io
        self.cache = cache
        firstOpenFlags = flags
        reopenFlags = flags & ~(O_CREAT | O_EXCL | O_TRUNC)
    }

    /// Opens `path` with `flags` now (creating it if they say so), through `cache`.
    convenience init(opening path: String, flags: Int32, isDirectory: Bool = false, io: FileIO, cache: OpenFileCache) throws(StorageError) {
        self.init(path: path, flags: flags, isDirectory: isDirectory, io: io, cache: cache)
        _ = try cache.handle(for: self)
    }

    deinit { cache.forget(ObjectIdentifier(self)) }

    /// The open descriptor, opened if the cache had let it go.
    func handle() throws(StorageError) -> FileHandle {
        try cache.handle(for: self)
    }

    /// The descriptor open now, if any (the one a write just used), without opening one.
    var liveHandle: FileHandle? { cache.liveHandle(of: self) }

    func write(at offset: Int, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws(StorageError) {
        try handle().write(at: offset, first, second)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(StorageError) -> Int {
        try handle().read(into: buffer, at: offset)
    }

    func truncate(to length: Int) throws(StorageError) {
        try handle().truncate(to: length)
    }

    /// `fdatasync` for a file, `fsync` for a directory, through the descriptor a write went
    /// through if it is still open. A file whose name is gone when it must be reopened needs no
    /// sync: the log renames a file only to delete it or to replace it with a synced copy.
    func sync() throws(StorageError) {
        let handle: FileHandle
        do throws(StorageError) {
            handle = try self.handle()
        } catch where error.errno == ENOENT {
            return
        }
        try handle.sync()
    }

    func size() throws(StorageError) -> Int {
        try handle().size()
    }
}
