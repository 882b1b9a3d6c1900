import CZeroMQ

/// Facts about the linked libzmq.
public enum ZeroMQ {
    /// The version of the libzmq library loaded at run time.
    public static var version: (major: Int, minor: Int, patch: Int) {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }

    /// Whether libzmq was built with `capability` (`zmq_has`), e.g. `"curve"`, `"ipc"`, `"draft"`.
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) != 0
    }
}
