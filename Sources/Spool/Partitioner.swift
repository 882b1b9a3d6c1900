/// Maps record keys to partitions. The mapping is part of Spool's contract and never changes
/// between versions: `(murmur2(key) & 0x7fffffff) mod partitionCount`, where murmur2 is the
/// 32-bit MurmurHash2 with seed `0x9747b28c` exactly as Kafka's default partitioner uses it,
/// so a key lands on the same partition number as it would in Kafka.
public enum Partitioner {
    /// The partition of `key` among `partitionCount` partitions (at least 1).
    public static func partition(forKey key: [UInt8], partitionCount: Int32) -> Int32 {
        precondition(partitionCount > 0, "a topic has at least one partition")
        return Int32(bitPattern: murmur2(key) & 0x7fff_ffff) % partitionCount
    }

    /// Kafka's murmur2 of `data`.
    public static func murmur2(_ data: [UInt8]) -> UInt32 {
        let seed: UInt32 = 0x9747_b28c
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        let length = data.count
        var h = seed ^ UInt32(truncatingIfNeeded: length)
        let whole = length & ~3
        var index = 0
        while index < whole {
            var k = UInt32(data[index]) | UInt32(data[index + 1]) << 8 | UInt32(data[index + 2]) << 16 | UInt32(data[index + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
            index += 4
        }
        let tail = length & 3
        if tail == 3 { h ^= UInt32(data[whole + 2]) << 16 }
        if tail >= 2 { h ^= UInt32(data[whole + 1]) << 8 }
        if tail >= 1 {
            h ^= UInt32(data[whole])
            h = h &* m
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return h
    }
}
