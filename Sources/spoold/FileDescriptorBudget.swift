import Glibc

/// The open-file budget: the partition logs' file cache holds up to `max.open.files` descriptors,
/// and every client connection holds one. `spoold` raises its soft limit to the hard one at start
/// and says when the cache would leave too little for clients.
enum FileDescriptorBudget {
    /// Descriptors that should stay free for client connections and the process itself.
    static let reserve = 256

    /// The limits after ``raiseSoftLimit()``: the soft limit in force, the one before, the hard one.
    struct Limits {
        var soft: Int
        var previous: Int
        var hard: Int
    }

    /// Raises the soft open-file limit to the hard limit (NATS does the same); nil if they cannot be read.
    static func raiseSoftLimit() -> Limits? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let previous = limit.rlim_cur
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let clamp = { (value: rlim_t) in Int(clamping: value) }  // RLIM_INFINITY (all ones) becomes Int.max
        return Limits(soft: clamp(limit.rlim_cur), previous: clamp(previous), hard: clamp(limit.rlim_max))
    }
}
