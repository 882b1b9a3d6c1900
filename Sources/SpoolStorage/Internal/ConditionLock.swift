import Glibc

/// A value guarded by a pthread mutex, with a condition variable to wait for changes of it.
/// (A pthread lock rather than `Synchronization.Mutex`: the thread sanitizer reports false races
/// for `Mutex` on Linux, where a pthread lock gives none.)
///
/// `@unchecked Sendable` is safe: `value` is only touched inside `withLock` / `wait`, with the
/// mutex held, and `Value` itself is `Sendable`.
final class ConditionLock<Value: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the lock held, then wakes every waiter so it can re-check its condition.
    /// The waiters are woken after the unlock: one woken before it would only block again on the
    /// mutex (a second wake-up, on the group-commit path of every durable produce).
    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        pthread_mutex_lock(mutex)
        defer {
            pthread_mutex_unlock(mutex)
            pthread_cond_broadcast(condition)
        }
        return body(&value)
    }

    /// Waits until `ready` holds, then runs `body` with the lock still held.
    func wait<Result>(until ready: (Value) -> Bool, then body: (inout Value) -> Result) -> Result {
        pthread_mutex_lock(mutex)
        while !ready(value) { pthread_cond_wait(condition, mutex) }
        defer {
            pthread_mutex_unlock(mutex)
            pthread_cond_broadcast(condition)
        }
        return body(&value)
    }
}
