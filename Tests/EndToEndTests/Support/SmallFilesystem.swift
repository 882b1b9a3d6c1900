import Foundation
import Glibc
import SpoolTesting

/// A real, small filesystem mounted for one test, so that a disk fills up, turns read-only or
/// hits a limit for real under `spoold`: a size-limited tmpfs, or an ext4 image on a loop device
/// (mounted `errors=remount-ro`, so an error makes it read-only as a failing disk would).
/// Mounting needs root (as `make test` runs here and in CI); ``unavailableReason`` says why not.
final class SmallFilesystem: @unchecked Sendable {
    enum Kind: String, CustomStringConvertible, CaseIterable, Sendable {
        case tmpfs, ext4
        var description: String { rawValue }
    }

    let kind: Kind
    /// Where it is mounted.
    let path: String
    private let scratch: TemporaryDirectory
    private var isMounted = false
    private let fillerPath: String

    /// Why the test filesystems cannot be had here (not root, no tmpfs or loop devices, a tool
    /// missing), or nil when both kinds can; checked once by mounting a tiny one of each.
    static let unavailableReason: String? = {
        guard geteuid() == 0 else { return "not root: mounting a small filesystem needs root (the disk-fault tests then rely on fault injection only)" }
        for tool in ["/usr/sbin/mkfs.ext4", "/sbin/e2fsck", "/usr/bin/fallocate", "/usr/bin/prlimit", "/bin/findmnt"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (Debian packages e2fsprogs and util-linux)"
        }
        for kind in Kind.allCases {
            do {
                try SmallFilesystem(kind, megabytes: 4).unmount()
            } catch {
                return "cannot mount a \(kind) here: \(error)"
            }
        }
        return nil
    }()

    /// Why an ext4 filesystem cannot be made to fail into read-only here (the kernel has no
    /// `trigger_fs_error`), or nil when it can; nil checks nothing when mounting fails anyway.
    static let readOnlyUnavailableReason: String? = {
        guard unavailableReason == nil, let probe = try? SmallFilesystem(.ext4, megabytes: 4) else { return nil }
        defer { probe.unmount() }
        guard let path = try? probe.triggerPath, FileManager.default.fileExists(atPath: path) else {
            return "this kernel has no /sys/fs/ext4/<device>/trigger_fs_error: the read-only test cannot fail a disk"
        }
        return nil
    }()

    /// Mounts a new filesystem of `kind` and `megabytes` on a temporary directory.
    init(_ kind: Kind, megabytes: Int) throws {
        self.kind = kind
        scratch = try TemporaryDirectory(prefix: "spool-e2e-fs")
        path = scratch.appending("mnt")
        fillerPath = "\(path)/filler"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        switch kind {
        case .tmpfs:
            try Self.command("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        case .ext4:
            let image = scratch.appending("disk.img")
            try Self.command("/usr/bin/truncate", ["-s", "\(megabytes)M", image])
            try Self.command("/usr/sbin/mkfs.ext4", ["-q", "-F", "-m", "0", image])  // -m 0: no blocks kept for root, who runs spoold here
            try Self.command("/bin/mount", ["-o", "loop,errors=remount-ro", image, path])
        }
        isMounted = true
    }

    deinit { unmount() }

    /// Unmounts it (lazily, so a process still holding files does not keep it). Idempotent.
    func unmount() {
        guard isMounted else { return }
        isMounted = false
        _ = try? Self.command("/bin/umount", ["-l", path])
    }

    /// Mounts the ext4 image again after ``unmount()`` (a "repaired" disk after a read-only event).
    func remount() throws {
        guard kind == .ext4, !isMounted else { return }
        let image = scratch.appending("disk.img")
        try Self.command("/sbin/e2fsck", ["-p", "-f", image], acceptingExitCodes: [0, 1])
        try Self.command("/bin/mount", ["-o", "loop,errors=remount-ro", image, path])
        isMounted = true
    }

    /// Bytes an unprivileged writer may still use.
    var freeBytes: Int {
        var status = statvfs()
        guard statvfs(path, &status) == 0 else { return 0 }
        return Int(status.f_bavail) * Int(status.f_frsize)
    }

    /// Takes space with a filler file until about `leaving` bytes are free. Writers running at
    /// the same time may take space between the measure and the allocation: then it measures
    /// again, a few times, and otherwise takes the disk to be as full as asked.
    func fill(leaving: Int) throws {
        for _ in 0..<10 {
            let take = freeBytes - leaving
            guard take > 0 else { return }
            let existing = (try? FileManager.default.attributesOfItem(atPath: fillerPath)[.size] as? Int) ?? 0
            if (try? Self.command("/usr/bin/fallocate", ["-l", "\(existing + take)", fillerPath])) != nil { return }
        }
    }

    /// Frees the space the filler took.
    func free() throws {
        if FileManager.default.fileExists(atPath: fillerPath) { try FileManager.default.removeItem(atPath: fillerPath) }
    }

    /// Makes the ext4 filesystem fail as a dying disk does: the kernel records an error and, with
    /// `errors=remount-ro`, turns it read-only under the processes writing to it.
    func failIntoReadOnly() throws {
        try Data("spool test: failing the disk\n".utf8).write(to: URL(fileURLWithPath: try triggerPath))
    }

    /// The ext4 file that records an error on this filesystem when written.
    private var triggerPath: String {
        get throws {
            precondition(kind == .ext4, "only ext4 has trigger_fs_error")
            let device = try Self.command("/bin/findmnt", ["-n", "-o", "SOURCE", path]).trimmingCharacters(in: .whitespacesAndNewlines)
            return "/sys/fs/ext4/\(URL(fileURLWithPath: device).lastPathComponent)/trigger_fs_error"
        }
    }

    /// Runs a command to completion; throws with its output unless it exits with an accepted code.
    @discardableResult
    static func command(_ executable: String, _ arguments: [String], acceptingExitCodes: Set<Int32> = [0]) throws -> String {
        let (status, text) = try runToEnd(executable, arguments)
        guard acceptingExitCodes.contains(status) else {
            throw HarnessError("\(executable) \(arguments.joined(separator: " ")) failed (\(status)): \(text)")
        }
        return text
    }
}
