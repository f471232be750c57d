import AllocationLedger
import GuestInterface
import Introspection
import X86

extension UserAllocationTracker {
    /// Puts the blocks each process's glibc malloc had handed out before the attach into the
    /// ledger, as `AllocatorFunction.beforeAttach` blocks with no stack, so that scans classify
    /// them too. Covered: the main arena's heap (`[heap]`, walked chunk by chunk; chunks in the
    /// heap's tcache and in the main arena's fastbins left out) and chunks mmapped on their own.
    /// Not covered: thread arenas and other threads' tcaches. Call with the guest paused.
    public func importPreexistingBlocks(_ guest: PausedGuest) -> PreexistingHeapSummary {
        var summary = PreexistingHeapSummary()
        guard let cpu = guest.vcpus.first else { return summary }
        let view: KernelView
        let tasks: [GuestTask]
        do {
            view = try KernelView(kernel: patcher.kernel, memory: guest.memory, vcpus: guest.vcpus)
            tasks = try view.tasks()
        } catch {
            summary.notes.append("the guest's processes could not be listed: \(error)")
            return summary
        }
        for task in tasks where task.pid == task.tgid && task.mm != 0 && !task.isKernelThread {
            guard let root = try? view.pageTableRoot(ofMM: task.mm), let mappings = try? view.mappings(ofMM: task.mm),
                  mappings.contains(where: { $0.path == "[heap]" }) else { continue }
            let user = UserMemory(memory: guest.memory, cr3: root.rawValue, cr4: cpu.cr4, efer: cpu.efer)
            let found = Self.preexistingChunks(mappings: mappings, reader: HeapPageReader(user: user))
            summary.heapsWalked += found.walked ? 1 : 0
            summary.arenasFound += found.arena ? 1 : 0
            summary.cachedFreeChunks += found.cachedFree
            summary.notes += found.notes.map { "pid \(task.tgid) (\(task.name)): \($0)" }
            guard !found.chunks.isEmpty else { continue }
            let executable = mappings.first { $0.path.hasPrefix("/") }?.path
            ledger.identify(root, as: ProcessIdentity(pid: task.tgid, command: task.name, executable: executable), modules: mappings)
            let known = ledger.liveBlocks(of: root)
            let now = clock.now
            for chunk in found.chunks where known[chunk.userAddress] == nil {
                guard ledger.allocate(in: root, address: chunk.userAddress, size: chunk.usableSize, function: .beforeAttach,
                                      stack: [], thread: task.tgid, time: now) == .recorded else { continue }
                summary.blocks += 1
                let (bytes, overflow) = summary.bytes.addingReportingOverflow(chunk.usableSize)
                summary.bytes = overflow ? .max : bytes
                if chunk.mmapped { summary.mmappedBlocks += 1 }
            }
        }
        return summary
    }

    /// What one process's heap holds: the in-use chunks, whether the heap was walked and its
    /// arena found, how many free chunks the caches held, and what failed.
    struct FoundChunks {
        var chunks: [GlibcHeapWalker.Chunk] = []
        var walked = false
        var arena = false
        var cachedFree = 0
        var notes: [String] = []
    }

    /// The in-use chunks of the thread arenas linked from `mainArena` (single-heap arenas), adding
    /// their tcache (the first chunk, when it has the tcache struct's size) and fastbin chunks to `free`.
    static func threadArenaChunks(walker: GlibcHeapWalker, mainArena: UInt64, free: inout Set<UInt64>,
                                  notes: inout [String]) -> [GlibcHeapWalker.Chunk] {
        let heaps: [GlibcHeapWalker.ThreadHeap]
        do {
            let found = try walker.threadHeaps(mainArena: mainArena)
            heaps = found.heaps
            notes += found.skipped.map { "thread arena not walked: \($0)" }
        } catch {
            notes.append("thread arenas not listed: \(error)")
            return []
        }
        var chunks: [GlibcHeapWalker.Chunk] = []
        for heap in heaps {
            do {
                let walk = try walker.walkHeap(start: heap.firstChunk, end: heap.end, top: heap.top)
                if let first = walk.inUse.first, first.address == heap.firstChunk, first.size == GlibcMallocLayout.tcacheChunkSizeField & ~7 {
                    free.insert(first.address)
                    free.formUnion(try walker.tcacheChunks(structChunk: first.address))
                }
                free.formUnion(try walker.fastbinChunks(arena: heap.arena))
                chunks += walk.inUse
            } catch {
                notes.append("thread arena 0x\(String(heap.arena, radix: 16)) not walked: \(error)")
            }
        }
        return chunks
    }

    /// Where glibc's main arena may be (in its `.data`): libc's writable file mappings, then any
    /// other writable file mapping (a static executable's own), each at most 4 MiB.
    static func arenaCandidates(_ mappings: [GuestMapping]) -> [Range<UInt64>] {
        let data = mappings.filter { $0.path.hasPrefix("/") && $0.permissions.hasPrefix("rw") && $0.end > $0.start
            && $0.end - $0.start <= 4 << 20 }
        let libc = data.filter { $0.path.hasSuffix("/libc.so.6") }
        let others = data.filter { !$0.path.hasSuffix("/libc.so.6") }
        return (libc + others).map { $0.start..<$0.end }
    }

    /// The in-use chunks of the process whose mappings are `mappings`, read through `reader`.
    static func preexistingChunks(mappings: [GuestMapping], reader: HeapPageReader) -> FoundChunks {
        var found = FoundChunks()
        let walker = GlibcHeapWalker { (address) throws(GlibcHeapError) in try reader.word(address) }
        if let heap = mappings.first(where: { $0.path == "[heap]" }) {
            do {
                let walk = try walker.walkHeap(candidates: walker.firstChunkCandidates(start: heap.start, end: heap.end), end: heap.end)
                found.walked = true
                var free = Set<UInt64>()
                // The first chunk of the heap is the main thread's tcache when it has its size.
                if let first = walk.inUse.first,
                   (try? reader.word(first.address &+ 8)) == GlibcMallocLayout.tcacheChunkSizeField {
                    free.insert(first.address)
                    do { free.formUnion(try walker.tcacheChunks(structChunk: first.address)) } catch {
                        found.notes.append("tcache not read: \(error)")
                    }
                }
                var inUse = walk.inUse
                if let arena = arenaCandidates(mappings).lazy.compactMap({ walker.findArena(in: $0, top: walk.top) }).first {
                    found.arena = true
                    do { free.formUnion(try walker.fastbinChunks(arena: arena)) } catch {
                        found.notes.append("fastbins not read: \(error)")
                    }
                    inUse += threadArenaChunks(walker: walker, mainArena: arena, free: &free, notes: &found.notes)
                } else {
                    found.notes.append("glibc's main arena was not found; chunks in its fastbins count as in use, thread arenas are not walked")
                }
                found.chunks = inUse.filter { !free.contains($0.address) }
                found.cachedFree = inUse.count - found.chunks.count
            } catch {
                found.notes.append("[heap] not walked: \(error)")
            }
        }
        for mapping in mappings where mapping.path.isEmpty && mapping.permissions.hasPrefix("rw") {
            found.chunks += walker.mmappedChunks(start: mapping.start, end: mapping.end)
        }
        return found
    }
}
