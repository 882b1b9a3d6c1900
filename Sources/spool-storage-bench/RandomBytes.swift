import SpoolTesting

/// `count` random bytes from a fast generator (SplitMix64) with a fresh seed: incompressible
/// data, made without a system call per byte.
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SeededGenerator(seed: UInt64.random(in: .min ... .max))
    return generator.bytes(count)
}
