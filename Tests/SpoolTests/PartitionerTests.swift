import Spool
import Testing

/// The partitioner is part of the contract: the same key lands on the same partition number as in Kafka.
@Suite struct PartitionerTests {
    /// Kafka's `UtilsTest.testMurmur2` vectors, as Int32 bit patterns.
    static let kafkaVectors: [([UInt8], Int32)] = [
        (Array("21".utf8), -973_932_308),
        (Array("foobar".utf8), -790_332_482),
        (Array("a-little-bit-long-string".utf8), -985_981_536),
        (Array("a-little-bit-longer-string".utf8), -1_486_304_829),
        (Array("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8".utf8), -58_897_971),
        ([97, 98, 99], 479_470_107),
    ]

    @Test(arguments: kafkaVectors)
    func murmur2MatchesKafka(input: [UInt8], expected: Int32) {
        #expect(Int32(bitPattern: Partitioner.murmur2(input)) == expected)
    }

    @Test(arguments: kafkaVectors)
    func partitionIsThePositiveHashModuloTheCount(input: [UInt8], expected: Int32) {
        for count: Int32 in [1, 2, 3, 7, 12, 100] {
            #expect(Partitioner.partition(forKey: input, partitionCount: count) == (expected & 0x7fff_ffff) % count)
        }
    }

    @Test func emptyKeyHasAStableHash() {
        // murmur2 of no bytes with Kafka's seed: h = seed ^ 0, then the final mix.
        var h: UInt32 = 0x9747_b28c
        h ^= h >> 13
        h = h &* 0x5bd1_e995
        h ^= h >> 15
        #expect(Partitioner.murmur2([]) == h)
        #expect(Partitioner.partition(forKey: [], partitionCount: 5) == Int32(bitPattern: h & 0x7fff_ffff) % 5)
    }
}
