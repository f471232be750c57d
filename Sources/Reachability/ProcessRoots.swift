import Introspection
import X86

/// Finds the roots of one guest process, the way LeakSanitizer and valgrind choose them:
///
/// - the user registers of every thread (the vCPU's for a thread running in user mode, else the
///   `pt_regs` saved at kernel entry), and its vector registers (xmm, ymm: the vCPU's, else the
///   kernel's saved `fpstate`); at exit, also those of the threads that were alive when the group's
///   exit began, as they were when each died;
/// - each live thread's stack from its stack pointer (minus the red zone) to the end of the mapping;
///   at exit, the exiting thread's stack only from where `exit` was entered (`ExitFrame`); a thread
///   whose stack pointer lies inside a live heap block (a stack the program allocated) has the part
///   of that block from its stack pointer (minus the red zone) to the block's end;
/// - each thread's static TLS and thread control block around its FS base;
/// - every other readable, writable mapping: data and bss of the loaded objects, anonymous memory;
///   of glibc's cached stacks of exited threads, only the thread control block and static TLS;
/// - the PT_GNU_RELRO part of each loaded object.
///
/// Left out: every live heap block, wherever it lies (glibc's mmapped chunks included), except the
/// live part of a stack in it; the brk heap, glibc's arena heaps and any other allocator's anonymous
/// memory (`AllocatorArena`), which hold the live blocks themselves (scanned only when reached) and
/// the allocator's free chunks and metadata (stale data, never roots); dead stack below a live
/// thread's stack pointer; `[vvar]`/`[vdso]`.
public struct ProcessRoots {
    /// glibc's `sizeof(struct pthread)` (2.36, x86-64), as `_thread_db_sizeof_pthread` gives it:
    /// the thread control block at the FS base.
    public var threadControlBlockBytes: UInt64 = 2368
    /// glibc's static TLS surplus for modules loaded later (1664 by default), rounded up.
    public var threadLocalSurplusBytes: UInt64 = 2048
    /// glibc's HEAP_MAX_SIZE on 64-bit hosts: arena heaps are aligned to it.
    public static let arenaHeapAlignment: UInt64 = 64 << 20

    public init() {}

    /// The roots of the threads `threads` of `mm`.
    /// - Parameters:
    ///   - blocks: the live blocks, cut out of every root range (nil: none known).
    ///   - exitFrame: at exit, where `exit` lies: a thread that called it has its stack scanned
    ///     only from `exit`'s entry stack pointer.
    ///   - exitedThreads: at exit, the threads that were alive when the group's exit began and died
    ///     before this scan, as they were when they died (a thread also in `threads` is read live).
    public func collect(view: KernelView, mm: UInt64, threads: [GuestTask], current: [Int: UInt64],
                        space: AddressSpace, blocks: HeapBlockIndex? = nil, exitFrame: ExitFrame? = nil,
                        exitedThreads: [ThreadRootState] = []) throws(IntrospectionError) -> ProcessRootSet {
        var set = ProcessRootSet()
        let mappings = try view.mappings(ofMM: mm)
        func mapping(containing address: UInt64) -> GuestMapping? {
            mappings.first { $0.start <= address && address < $0.end }
        }
        // Threads: registers, stack, TLS.
        var stackMappings: Set<UInt64> = []
        var threadLocals: [(Int32, UInt64)] = []
        // Stacks inside heap blocks: kept whole when the blocks are cut out of the other ranges.
        var stacksInBlocks: [RootRange] = []
        var states: [ThreadRootState] = []
        for task in threads {
            do { states.append(try ThreadRootState.read(task, view: view, current: current)) } catch {
                set.missingThreads.append(MissingThread(pid: task.pid, error: error))
            }
        }
        let live = Set(threads.map(\.pid))
        states += exitedThreads.filter { !live.contains($0.pid) }
        for thread in states {
            set.registerWords += thread.generalPurpose
            // Vector registers too; a thread whose saved state cannot be read keeps its other roots.
            if let vector = thread.vector { set.registerWords += vector } else { set.threadsWithoutVectorRegisters.append(thread.pid) }
            set.threads.append(thread.pid)
            let rsp = thread.stackPointer
            let belowRedZone = rsp > Self.redZoneBytes ? rsp - Self.redZoneBytes : 0
            if let blocks, let hit = blocks.block(containing: rsp) {
                let block = blocks.range(of: hit.block)
                if let stack = Range.ordered(max(block.lowerBound, belowRedZone & ~7), block.upperBound) {
                    stacksInBlocks.append(RootRange(stack, .stack(thread: thread.pid)))
                }
            } else if let m = mapping(containing: rsp), m.permissions.hasPrefix("rw") {
                var low = max(m.start, belowRedZone) & ~7
                if let exitFrame, let entry = exitEntry(exitFrame, rsp: rsp, stackEnd: m.end, space: space) {
                    low = entry
                    set.exitEntries[thread.pid] = entry
                }
                if let stack = Range.ordered(low, m.end) {
                    stackMappings.insert(m.start)
                    set.ranges.append(RootRange(stack, .stack(thread: thread.pid)))
                }
            }
            if thread.threadPointer != 0 { threadLocals.append((thread.pid, thread.threadPointer)) }
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
            if m.fileObject == 0, m.path.isEmpty, let blocks,
               AllocatorArena.holdsAllocatorBlocks(whole, blocks: blocks, header: { start in
                   guard start >= 16, let words = try? space.readWords(at: GuestVirtualAddress(start - 16), count: 2),
                         words.count == 2 else { return nil }
                   return (words[0], words[1])
               }) {
                continue
            }
            if m.permissions.hasPrefix("rw") {
                if set.missingThreads.isEmpty, let previous = mapping(containing: m.start &- 1),
                   Self.isCachedThreadStack(m, after: previous),
                   let cached = cachedThreadRoots(m.start..<m.end, threadLocalBytes: threadLocalBytes, readPage: { page in
                       try? space.readWords(at: GuestVirtualAddress(page), count: 512)
                   }) {
                    // No live thread runs on it: only its thread control block and static TLS at the top,
                    // and whatever anonymous memory the kernel merged into the mapping above the stack.
                    set.ranges.append(RootRange(cached.threadTop, .threadLocal(thread: 0)))
                    if let above = cached.above { set.ranges.append(RootRange(above, .writable(path: m.path))) }
                    continue
                }
                set.ranges.append(RootRange(whole, .writable(path: m.path)))
                continue
            }
            for (r, path) in relro where r.overlaps(whole) {
                set.ranges.append(RootRange(r.clamped(to: whole), .relocationReadOnly(path: path)))
            }
        }
        if let blocks {
            set.ranges = set.ranges.flatMap { root in blocks.uncovered(root.range).map { RootRange($0, root.kind) } }
        }
        set.ranges += stacksInBlocks
        set.readOnlyData = LeakCheckHeuristics.merged(
            mappings.filter { $0.fileObject != 0 && $0.permissions.hasPrefix("r--") }.compactMap { Range.ordered($0.start, $0.end) }
                + relro.map(\.0))
        return set
    }

    /// glibc's stack of a thread (an anonymous read-write mapping right above its anonymous
    /// `PROT_NONE` guard) that no live thread of the process runs on: a thread that exited, whose
    /// stack glibc keeps cached. Its frames are dead; only its thread control block and static TLS
    /// at the top can hold live pointers (valgrind never scans stack memory below a stack pointer).
    static func isCachedThreadStack(_ m: GuestMapping, after previous: GuestMapping) -> Bool {
        m.fileObject == 0 && m.path.isEmpty && previous.end == m.start && previous.fileObject == 0 && previous.path.isEmpty
            && previous.permissions.hasPrefix("---")
    }

    /// The thread control block and static TLS of a cached thread stack in the mapping `range`, and
    /// the part of the mapping above the stack. glibc puts `struct pthread` at the top of the stack
    /// it allocates, and its `tcbhead_t` starts with two pointers to itself (`tcb` at 0, `self` at
    /// 16), the thread pointer; the stack ends at the page boundary at or above the end of
    /// `struct pthread`. The kernel may have merged anonymous memory mapped right above the stack
    /// (another thread's static TLS, a loader's data) into the same mapping, so the thread pointer
    /// is searched from the bottom up, in the pages that are present (a dead stack has few): the
    /// lowest one is this stack's own. The modules' static TLS blocks lie below it (their PT_TLS
    /// sizes, rounded up, plus 64 bytes of alignment); below them the surplus for modules loaded
    /// later (800 bytes in a static glibc 2.36 program, measured) and then the dead stack, whose top
    /// is only a few hundred bytes lower: the surplus is left out. nil when no thread pointer is
    /// found in the first `searchPages` pages (then the mapping is not taken for a glibc stack).
    /// `readPage` gives a present page's 512 words (nil: not present or unreadable).
    func cachedThreadRoots(_ range: Range<UInt64>, threadLocalBytes: UInt64,
                           readPage: (UInt64) -> [UInt64]?) -> (threadTop: Range<UInt64>, above: Range<UInt64>?)? {
        var page = (range.lowerBound &+ 0xFFF) & ~0xFFF
        var pages = 0
        while page >= range.lowerBound, range.upperBound >= 4096, page <= range.upperBound &- 4096, pages < Self.cachedStackSearchPages {
            defer { page &+= 4096; pages += 1 }
            guard let words = readPage(page), words.count == 512 else { continue }
            for i in 0..<(512 - 2) {
                let address = page &+ UInt64(i) * 8
                guard address != 0, words[i] == address, words[i + 2] == address else { continue }
                let below = min((threadLocalBytes &+ 63) & ~63, 1 << 24) &+ 64
                let low = max(range.lowerBound, address > below ? (address - below) & ~7 : 0)
                let (tcbEnd, overflow) = address.addingReportingOverflow(threadControlBlockBytes)
                let stackTop = overflow ? range.upperBound : min(range.upperBound, (tcbEnd &+ 0xFFF) & ~0xFFF)
                guard let top = Range.ordered(low, stackTop) else { return nil }
                return (top, top.upperBound < range.upperBound ? top.upperBound..<range.upperBound : nil)
            }
        }
        return nil
    }

    /// How far up a cached thread stack the thread pointer is searched: 64 MiB of pages (most not
    /// present, and skipped at the cost of a page-table walk).
    static let cachedStackSearchPages = 16_384

    /// The x86-64 System V red zone: a leaf function may keep data this far below its stack pointer.
    public static let redZoneBytes: UInt64 = 128

    /// `exit`'s entry stack pointer on the stack from `rsp` up to `stackEnd`, when the thread is in `exit`.
    func exitEntry(_ frame: ExitFrame, rsp: UInt64, stackEnd: UInt64, space: AddressSpace) -> UInt64? {
        let start = rsp & ~7
        guard start < stackEnd else { return nil }
        let count = Int(min((stackEnd - start) / 8, UInt64(ExitFrame.searchWords)))
        var words: [UInt64] = []
        // Page by page, so an unreadable page ends the search instead of failing it.
        var address = start
        while words.count < count {
            let inPage = Int(min(UInt64(count - words.count), (4096 - (address & 0xFFF)) / 8))
            guard let read = try? space.readWords(at: GuestVirtualAddress(address), count: inPage) else { break }
            words += read
            address &+= UInt64(inPage) * 8
        }
        guard let entry = frame.entryStackPointer(stackPointer: start, words: words), entry > start, entry <= stackEnd else { return nil }
        return entry
    }

    /// `sizeof(heap_info)` on x86-64: 48 bytes since glibc 2.35 (which added `pagesize`), 32 before.
    static let heapInfoSizes: Set<UInt64> = [32, 48]

    /// An anonymous mapping that starts a glibc arena heap: aligned to HEAP_MAX_SIZE, and its
    /// `heap_info.ar_ptr` points at an arena placed right after a `heap_info` (`heapInfoSizes`) at
    /// such an alignment (its own, for an arena's first heap; the arena's first heap, for later ones).
    func isArenaHeap(_ m: GuestMapping, space: AddressSpace) -> Bool {
        guard m.fileObject == 0, m.path.isEmpty, m.start & (Self.arenaHeapAlignment - 1) == 0,
              let arena = try? space.load(UInt64.self, at: GuestVirtualAddress(m.start)) else { return false }
        return Self.isArenaPointer(arena)
    }

    /// Whether a `heap_info.ar_ptr` value is an arena right after a `heap_info` at a heap's alignment.
    static func isArenaPointer(_ arena: UInt64) -> Bool {
        heapInfoSizes.contains(arena & (arenaHeapAlignment - 1)) && arena < 0x0000_8000_0000_0000
    }
}
