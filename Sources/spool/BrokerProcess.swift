import BenchmarkSupport
import Foundation
import Glibc

/// The broker's process on this machine, read through `/proc`: its resident memory and the CPU
/// time it has used, so a bench can say what its clients cost the broker.
struct BrokerProcess: Sendable {
    /// The process id.
    let pid: Int32
    /// How it was found, for the report: `--broker-pid`, or the spoold listening on the port.
    let foundBy: String

    /// One reading of the process.
    struct Sample: Sendable {
        /// Resident memory (`VmRSS` of `/proc/<pid>/status`), in bytes.
        var residentBytes: Int
        /// User plus system CPU time (`utime + stime` of `/proc/<pid>/stat`), in seconds.
        var cpuSeconds: Double
        /// When it was taken, monotonic nanoseconds.
        var time: UInt64
    }

    /// The broker behind `endpoint`: `explicitPID` if given (an error if no such process runs),
    /// else the `spoold` process that listens on the endpoint's TCP port, else the only `spoold`
    /// running when the endpoint has no TCP port (ipc://). Nil with the reason when none fits:
    /// the broker's HTTP status reports no pid, so there is nothing else to ask.
    static func find(explicitPID: Int32?, endpoint: String) throws(BenchFailure) -> (process: BrokerProcess?, reason: String) {
        if let explicitPID {
            guard let process = BrokerProcess(pid: explicitPID, foundBy: "--broker-pid \(explicitPID)"), process.sample() != nil else {
                throw BenchFailure("--broker-pid \(explicitPID): no such process to read in /proc")
            }
            return (process, "")
        }
        let candidates = processIDs(named: "spoold")
        if let port = tcpPort(of: endpoint) {
            let listening = listeningSocketInodes(port: port)
            if let pid = candidates.first(where: { !socketInodes(of: $0).isDisjoint(with: listening) }) {
                return (BrokerProcess(pid: pid, foundBy: "the spoold listening on port \(port) (pid \(pid))"), "")
            }
            return (nil, "no spoold on this machine listens on port \(port) (give --broker-pid)")
        }
        if candidates.count == 1, let pid = candidates.first {
            return (BrokerProcess(pid: pid, foundBy: "the only spoold running (pid \(pid))"), "")
        }
        return (nil, "\(candidates.count) spoold processes run and the endpoint names no TCP port (give --broker-pid)")
    }

    private init?(pid: Int32, foundBy: String) {
        guard pid > 0 else { return nil }
        self.pid = pid
        self.foundBy = foundBy
    }

    /// Reads the process now; nil if it is gone.
    func sample() -> Sample? {
        guard let residentBytes = residentBytes(ofProcess: pid),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let commandEnd = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (command) ": state is field 3, utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: commandEnd)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return Sample(residentBytes: residentBytes, cpuSeconds: (user + system) / Double(sysconf(Int32(_SC_CLK_TCK))),
                      time: monotonicNanoseconds())
    }

    /// The ids of the processes whose command name is `name`.
    private static func processIDs(named name: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.sorted()
    }

    /// The port of a `tcp://host:port` endpoint.
    private static func tcpPort(of endpoint: String) -> Int? {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return nil }
        return Int(endpoint[endpoint.index(after: colon)...])
    }

    /// The inodes of the sockets listening on TCP `port` (IPv4 and IPv6), from `/proc/net/tcp*`.
    private static func listeningSocketInodes(port: Int) -> Set<String> {
        let listen = "0A"
        var inodes: Set<String> = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[3] == listen, let hexPort = fields[1].split(separator: ":").last,
                      Int(hexPort, radix: 16) == port else { continue }
                inodes.insert(String(fields[9]))
            }
        }
        return inodes
    }

    /// The socket inodes among the open descriptors of `pid` (empty if they cannot be read).
    private static func socketInodes(of pid: Int32) -> Set<String> {
        let directory = "/proc/\(pid)/fd"
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return Set(descriptors.compactMap { descriptor -> String? in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(descriptor)"),
                  target.hasPrefix("socket:[") else { return nil }
            return String(target.dropFirst("socket:[".count).dropLast())
        })
    }
}
