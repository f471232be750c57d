import Introspection
import X86

/// Finds the roots of one guest process, the way LeakSanitizer and valgrind choose them:
///
/// - the user registers of every thread (the vCPU's for a thread running in user mode, else the
///   `pt_regs` saved at kernel entry);
/// - each live thread's stack from its stack pointer (minus the red zone) to the end of the mapping;
/// - each thread's static TLS and thread control block around its FS base;
/// - every other readable, writable mapping: data and bss of the loaded objects, anonymous memory
///   (including glibc's cached stacks of exited threads);
/// - the PT_GNU_RELRO part of each loaded object.
///
/// Left out: the brk heap and glibc's arena heaps, which hold the live blocks themselves (scanned
/// only when reached) and the allocator's free chunks (stale data, never roots); dead stack below a
/// live thread's stack pointer; `[vvar]`/`[vdso]`.
public struct ProcessRoots {
    /// glibc's `sizeof(struct pthread)` (2.36, x86-64), as `_thread_db_sizeof_pthread` gives it:
    /// the thread control block at the FS base.
    public var threadControlBlockBytes: UInt64 = 2368
    /// glibc's static TLS surplus for modules loaded later (1664 by default), rounded up.
    public var threadLocalSurplusBytes: UInt64 = 2048
    /// glibc's HEAP_MAX_SIZE on 64-bit hosts: arena heaps are aligned to it.
    public static let arenaHeapAlignment: UInt64 = 64 << 20

    public init() {}

    /// The threads of `mm` among `tasks`, or the given exiting task when `tasks` is empty.
    public func collect(view: KernelView, mm: UInt64, threads: [GuestTask], current: [Int: UInt64],
                        space: AddressSpace) throws(IntrospectionError) -> ProcessRootSet {
        var set = ProcessRootSet()
        let mappings = try view.mappings(ofMM: mm)
        func mapping(containing address: UInt64) -> GuestMapping? {
            mappings.first { $0.start <= address && address < $0.end }
        }
        // Threads: registers, stack, TLS.
        var stackMappings: Set<UInt64> = []
        var threadLocals: [(Int32, UInt64)] = []
        for task in threads {
            do {
                let (registers, _) = try view.userRegisters(of: task, current: current)
                set.registerWords += registers.generalPurpose
                set.threads.append(task.pid)
                let rsp = registers.rsp
                if let m = mapping(containing: rsp), m.permissions.hasPrefix("rw"),
                   let stack = Range.ordered(max(m.start, rsp > 128 ? rsp - 128 : 0) & ~7, m.end) {
                    stackMappings.insert(m.start)
                    set.ranges.append(RootRange(stack, .stack(thread: task.pid)))
                }
                let fs = try view.fsBase(of: task, current: current)
                if fs != 0 { threadLocals.append((task.pid, fs)) }
            } catch {
                set.missingThreads.append(MissingThread(pid: task.pid, error: error))
            }
        }
        // Loaded objects: RELRO ranges and TLS sizes, from their program headers.
        var threadLocalBytes: UInt64 = 0
        var relro: [(Range<UInt64>, String)] = []
        for m in mappings where m.fileObject != 0 && m.fileOffset == 0 {
            guard let segments = ELFSegments.read(mappingStart: m.start, mappingEnd: m.end, space: space) else { continue }
            threadLocalBytes &+= segments.threadLocalBytes
            if let r = segments.relocationReadOnly { relro.append((r, m.path)) }
        }
        for (thread, fs) in threadLocals {
            guard let m = mapping(containing: fs), m.permissions.hasPrefix("rw") else { continue }
            let below = min(threadLocalBytes &+ threadLocalSurplusBytes, 1 << 24)
            let low = max(m.start, fs > below ? fs - below : 0) & ~7, high = min(m.end, fs.addingSaturated(threadControlBlockBytes))
            if low < high, !stackMappings.contains(m.start) { set.ranges.append(RootRange(low..<high, .threadLocal(thread: thread))) }
        }
        // Mappings.
        for m in mappings where m.permissions.hasPrefix("r") {
            guard let whole = Range.ordered(m.start, m.end) else { continue }
            if m.path == "[vvar]" || m.path == "[vdso]" || m.path == "[vsyscall]" || stackMappings.contains(m.start) { continue }
            if m.path == "[heap]" || isArenaHeap(m, space: space) { continue }
            if m.permissions.hasPrefix("rw") {
                set.ranges.append(RootRange(whole, .writable(path: m.path)))
                continue
            }
            for (r, path) in relro where r.overlaps(whole) {
                set.ranges.append(RootRange(r.clamped(to: whole), .relocationReadOnly(path: path)))
            }
        }
        set.readOnlyData = LeakCheckHeuristics.merged(
            mappings.filter { $0.fileObject != 0 && $0.permissions.hasPrefix("r--") }.compactMap { Range.ordered($0.start, $0.end) }
                + relro.map(\.0))
        return set
    }

    /// An anonymous mapping that starts a glibc arena heap: aligned to HEAP_MAX_SIZE, and its
    /// `heap_info.ar_ptr` points at an arena placed right after a `heap_info` (32 bytes) at such an
    /// alignment (its own, for an arena's first heap; the arena's first heap, for later ones).
    func isArenaHeap(_ m: GuestMapping, space: AddressSpace) -> Bool {
        guard m.fileObject == 0, m.path.isEmpty, m.start & (Self.arenaHeapAlignment - 1) == 0,
              let arena = try? space.load(UInt64.self, at: GuestVirtualAddress(m.start)) else { return false }
        return arena & (Self.arenaHeapAlignment - 1) == 32 && arena < 0x0000_8000_0000_0000
    }
}
