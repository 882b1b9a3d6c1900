import BenchmarkSupport
import Foundation
import Spool

/// The topics and records of one case of the partitions section: `topics` topics of
/// `partitionsPerTopic` partitions, each partition holding `batchesPerPartition` batches of
/// stamped records in 4 KiB segments. Every record can be told from every other, so a read-back
/// proves each partition holds exactly what was written, at the right offsets.
///
/// Partitions are numbered 0..<``partitionCount`` across topics: number `n` is partition
/// `n % partitionsPerTopic` of topic `n / partitionsPerTopic`.
struct PartitionLayout: Sendable {
    /// `segment.bytes` of every topic: the smallest the broker accepts, so that a few batches
    /// make several segments.
    static let segmentBytes = 4096
    /// Bytes of each record's value.
    static let recordBytes = 100
    /// Records per batch: 1,500 bytes of values, about 1.7 KB encoded, so two batches fill a segment.
    static let recordsPerBatch = 15
    /// Bytes at the start of a value that stamp it: the partition number and the offset, 8 bytes each, little-endian.
    private static let stampBytes = 16

    /// Topics in the case.
    let topics: Int
    /// Partitions of each topic.
    let partitionsPerTopic: Int
    /// Batches written to each partition.
    let batchesPerPartition: Int
    /// The bytes after the stamp, the same in every value.
    private let filler: [UInt8]

    /// A case of `topics` × `partitionsPerTopic` partitions of `batchesPerPartition` batches each.
    init(topics: Int, partitionsPerTopic: Int, batchesPerPartition: Int) {
        self.topics = topics
        self.partitionsPerTopic = partitionsPerTopic
        self.batchesPerPartition = batchesPerPartition
        filler = randomBytes(Self.recordBytes - Self.stampBytes)
    }

    /// Partitions across all topics.
    var partitionCount: Int { topics * partitionsPerTopic }
    /// Records written to each partition.
    var recordsPerPartition: Int { batchesPerPartition * Self.recordsPerBatch }
    /// The settings every topic is created with.
    var topicSettings: [String: String] { ["segment.bytes": "\(Self.segmentBytes)"] }
    /// `10,000 topics × 1 partition`.
    var description: String { "\(grouped(topics)) topics × \(grouped(partitionsPerTopic)) partition\(partitionsPerTopic == 1 ? "" : "s")" }

    /// The name of topic `index`: its partition count, then the index (`p100-00042`).
    func topicName(_ index: Int) -> String {
        String(format: "p%d-%05d", partitionsPerTopic, index)
    }

    /// The name of the `index`th topic created after the case's own (`p100-extra-3`).
    func extraTopicName(_ index: Int) -> String {
        "p\(partitionsPerTopic)-extra-\(index)"
    }

    /// The topic name and partition of partition `number`.
    func address(ofPartition number: Int) -> (topic: String, partition: Int32) {
        (topicName(number / partitionsPerTopic), Int32(number % partitionsPerTopic))
    }

    /// Batch `batch` of partition `number`, as published.
    func batch(_ batch: Int, ofPartition number: Int) -> [OutgoingRecord] {
        let first = batch * Self.recordsPerBatch
        return (first..<first + Self.recordsPerBatch).map { OutgoingRecord(value: value(partition: number, offset: $0)) }
    }

    /// Every record of partition `number`, in offset order from 0.
    func records(ofPartition number: Int) -> [OutgoingRecord] {
        (0..<batchesPerPartition).flatMap { batch($0, ofPartition: number) }
    }

    /// The value of the record at `offset` in partition `number`: the stamp, then the filler.
    private func value(partition number: Int, offset: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.recordBytes)
        withUnsafeBytes(of: UInt64(number).littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt64(offset).littleEndian) { bytes += $0 }
        return bytes + filler
    }
}
