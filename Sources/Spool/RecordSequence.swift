/// The records of one partition as an `AsyncSequence` (see ``SpoolClient/records(from:partition:startingAt:)``).
///
/// Each iterator resolves its start position, then long-polls the broker. Retriable errors
/// (a lost connection, a timeout, a restarting broker) are retried with backoff from the
/// next unread offset, so iteration survives broker restarts with no gap and no duplicate.
/// Other errors (an offset below the log start, an unknown partition) end the loop by throwing
/// ``SpoolError``.
public struct RecordSequence: AsyncSequence, Sendable {
    public typealias Element = SpoolRecord

    let client: SpoolClient
    let topic: String
    let partition: Int32
    let start: StartPosition

    public func makeAsyncIterator() -> Iterator {
        Iterator(client: client, topic: topic, partition: partition, start: start)
    }

    /// Iterates one partition; not shared between tasks.
    public struct Iterator: AsyncIteratorProtocol {
        let client: SpoolClient
        let topic: String
        let partition: Int32
        let start: StartPosition
        private var nextOffset: Int64?
        /// Where the last fetch ended: the next fetch starts there once the buffer is read, past
        /// offsets a compacted batch covers without records.
        private var skipTo: Int64?
        private var buffer: [SpoolRecord] = []
        private var index = 0

        init(client: SpoolClient, topic: String, partition: Int32, start: StartPosition) {
            self.client = client
            self.topic = topic
            self.partition = partition
            self.start = start
        }

        /// Records already fetched that ``next()`` returns without waiting (a printer can flush
        /// its output when this reaches 0).
        public var bufferedCount: Int { buffer.count - index }

        /// The next record, waiting as long as it takes. Throws ``SpoolError`` on a non-retriable
        /// failure and `CancellationError` when the task is cancelled.
        public mutating func next() async throws -> SpoolRecord? {
            var backoff = Backoff()
            while index == buffer.count {
                try Task.checkCancellation()
                switch await fetchMore() {
                case .success(let fetched):
                    buffer = fetched.records
                    index = 0
                    backoff.reset()
                    skipTo = fetched.nextOffset
                case .failure(let error) where error.code == .cancelled:
                    throw CancellationError()
                case .failure(let error) where error.isRetriable:
                    try await Task.sleep(for: backoff.next())
                case .failure(let error):
                    throw error
                }
            }
            defer { index += 1 }
            nextOffset = buffer[index].offset + 1
            return buffer[index]
        }

        private mutating func fetchMore() async -> Result<FetchedRecords, SpoolError> {
            do {
                let offset = try await resolvedOffset()
                let from = Swift.max(offset, skipTo ?? offset)
                nextOffset = from
                return .success(try await client.fetch(from: topic, partition: partition, offset: from,
                                                       maxWait: client.configuration.fetchMaxWait))
            } catch {
                return .failure(error)
            }
        }

        private mutating func resolvedOffset() async throws(SpoolError) -> Int64 {
            if let nextOffset { return nextOffset }
            let offset: Int64
            switch start.kind {
            case .offset(let value): offset = value
            case .earliest: offset = try await client.offset(of: topic, partition: partition, .earliest)
            case .latest: offset = try await client.offset(of: topic, partition: partition, .latest)
            case .timestamp(let time): offset = try await client.offset(of: topic, partition: partition, .timestamp(time))
            }
            nextOffset = offset
            return offset
        }
    }
}
