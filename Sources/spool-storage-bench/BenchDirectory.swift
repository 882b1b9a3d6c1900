import Foundation
import Glibc
import Synchronization

/// The directory holding every file the benchmark writes: a fresh `.bench-tmp-XXXXXX` made
/// inside a parent directory, removed by ``remove()``. Knowing its filesystem lets the report
/// say what the figures were measured on. It also knows the processes (brokers) running on
/// its files, so that an interrupted run kills them before deleting what they use.
final class BenchDirectory: Sendable {
    /// Absolute path of the directory.
    let path: String
    /// The filesystem it lives on.
    let filesystem: Filesystem
    /// Child processes running on files in the directory.
    private let processes = Mutex<Set<pid_t>>([])

    /// Creates `<parent>/.bench-tmp-XXXXXX`.
    init(parent: String) throws(BenchError) {
        var template = Array("\(parent)/.bench-tmp-XXXXXX".utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError.posix("cannot create a directory in", path: parent)
        }
        guard let resolved = realpath(created, nil) else { throw BenchError.posix("cannot resolve", path: String(cString: created)) }
        defer { free(resolved) }
        path = String(cString: resolved)
        filesystem = try Filesystem(of: path)
    }

    /// Creates (or empties) the subdirectory `name` and returns its path.
    func freshSubdirectory(_ name: String) throws -> String {
        let subdirectory = "\(path)/\(name)"
        removeItem(subdirectory)
        try FileManager.default.createDirectory(atPath: subdirectory, withIntermediateDirectories: true)
        return subdirectory
    }

    /// Deletes a file or directory tree; a missing one is fine.
    func removeItem(_ itemPath: String) {
        try? FileManager.default.removeItem(atPath: itemPath)
    }

    /// Deletes the directory and everything in it.
    func remove() {
        removeItem(path)
    }

    /// Notes a child process that runs on files in the directory, until ``untrack(process:)``.
    func track(process pid: pid_t) {
        processes.withLock { _ = $0.insert(pid) }
    }

    /// Forgets a child process that has exited.
    func untrack(process pid: pid_t) {
        processes.withLock { _ = $0.remove(pid) }
    }

    /// Until the returned sources are cancelled, SIGINT and SIGTERM kill the tracked processes
    /// (SIGKILL), delete the directory and end the process with status 128 + the signal, so an
    /// interrupted run leaves nothing behind.
    func removeOnSignals() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                for pid in processes.withLock({ $0 }) { kill(pid, SIGKILL) }
                remove()
                exit(128 + signalNumber)
            }
            source.resume()
            return source
        }
    }
}

/// The filesystem of a path, from `/proc/self/mountinfo` (Swift's Glibc module has no `statfs`),
/// and its device's flush counter in `/proc/diskstats`.
struct Filesystem: Sendable {
    /// Filesystems that keep files in memory, where a disk benchmark means nothing.
    private static let inMemoryNames: Set<String> = ["tmpfs", "ramfs"]
    /// 0-based field of "flush requests completed" in a `/proc/diskstats` line (Linux 5.5 and later).
    private static let flushesField = 18

    /// The filesystem type, e.g. `ext4`.
    let name: String
    /// Major and minor number of the device holding it.
    let device: (major: UInt64, minor: UInt64)

    /// Finds the mount holding `path` (an absolute path without symbolic links): the last
    /// `/proc/self/mountinfo` line with the longest mount point that contains it.
    init(of path: String) throws(BenchError) {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else {
            throw BenchError("cannot read /proc/self/mountinfo to find the filesystem of \(path)")
        }
        // Each line: id parent major:minor root mountPoint options [optional fields] - type source superOptions
        var best: (mountPoint: String, type: String, device: (UInt64, UInt64))?
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count > 4, let separator = fields.firstIndex(of: "-"), separator + 1 < fields.count else { continue }
            let numbers = fields[2].split(separator: ":").compactMap { UInt64($0) }
            let mountPoint = fields[4].replacingOccurrences(of: "\\040", with: " ")
            let contains = mountPoint == "/" || path == mountPoint || path.hasPrefix(mountPoint + "/")
            guard numbers.count == 2, contains, mountPoint.count >= best?.mountPoint.count ?? 0 else { continue }
            best = (mountPoint, fields[separator + 1], (numbers[0], numbers[1]))
        }
        guard let best else { throw BenchError("no line of /proc/self/mountinfo holds \(path)") }
        name = best.type
        device = (major: best.device.0, minor: best.device.1)
    }

    /// True for tmpfs and ramfs: "disk" figures there measure memory.
    var isInMemory: Bool { Self.inMemoryNames.contains(name) }

    /// Flush requests the device has completed since boot (each `fdatasync` that wrote data
    /// usually costs one), or nil if `/proc/diskstats` has no such line or field. Counts the
    /// whole device, so other processes' syncs are included.
    func flushCount() -> Int? {
        guard let stats = try? String(contentsOfFile: "/proc/diskstats", encoding: .utf8) else { return nil }
        for line in stats.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > Self.flushesField, UInt64(fields[0]) == device.major, UInt64(fields[1]) == device.minor else { continue }
            return Int(fields[Self.flushesField])
        }
        return nil
    }

    /// `ext4 (device 254:0)`.
    var summary: String { "\(name) (device \(device.major):\(device.minor))" }
}
