import Reachability

/// The threads of each exiting thread group that died before the last one tore the address space
/// down (the kernel's `do_exit` with `SIGNAL_GROUP_EXIT` set), as they were when they died: at
/// `exit_mmap` their tasks are gone, but LeakSanitizer and valgrind count every thread alive when
/// the exit began, registers and live stack. Bounded: a space keeps at most `threadsPerSpace`,
/// and at most `spaces` spaces are kept (the oldest entry goes first).
struct ExitedThreads: Sendable {
    static let threadsPerSpace = 4096
    static let spaces = 1024
    private var byMM: [UInt64: [ThreadRootState]] = [:]
    private var order: [UInt64] = []

    mutating func add(_ thread: ThreadRootState, mm: UInt64) {
        if byMM[mm] == nil {
            if order.count >= Self.spaces { byMM[order.removeFirst()] = nil }
            order.append(mm)
        }
        guard byMM[mm, default: []].count < Self.threadsPerSpace else { return }
        byMM[mm, default: []].append(thread)
    }

    /// The threads kept for `mm`, forgotten here.
    mutating func take(mm: UInt64) -> [ThreadRootState] {
        guard let threads = byMM.removeValue(forKey: mm) else { return [] }
        order.removeAll { $0 == mm }
        return threads
    }
}
