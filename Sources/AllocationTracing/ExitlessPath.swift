import AllocationLedger
import DebugInfo
import Foundation
import GuestMemory
import Synchronization
import X86

/// The exitless path of one tracker (`run --exitless`, `docs/exitless-tracking.md`): where each
/// allocator entry's patch goes, the shared code page and its stubs (releases and allocations),
/// each address space's window and ring, and the draining of rings into records. The page-cache
/// patches themselves are the `PageCachePatcher`'s, like its `int3`s.
final class ExitlessPath: Sendable {
    let region: MonitorRegion
    /// Records in each ring (the stubs have it built in).
    let ringCapacity: Int
    private let state = Mutex(State())

    /// One stub in the code page.
    struct Stub: Sendable, Equatable {
        /// Bytes displaced at the entry: the resume address is the entry plus these.
        var displacedLength: Int { ExitlessPath.displacedLength(site, following) }
        var function: AllocatorFunction { site.entryPoint.function }
        /// The first instruction displaced (the one the `int3` displaces).
        var displaced: PrologueInstruction { site.instruction }
        /// False where another family's deallocator shares the entry (no mismatch can be told).
        var checksFamily: Bool { !site.aliasesOtherFamilies }

        /// Runs the displaced instructions on `registers` (rip at the entry) with the thread's rights.
        func runDisplaced(_ registers: inout GeneralRegisters, user: UserMemory) throws {
            for instruction in [displaced] + following {
                try instruction.execute(&registers, readMemory: { try user.read($0, count: $1) }, writeMemory: { try user.write($0, $1) })
            }
        }

        /// Its entry (what the hop's `push imm32; ret` goes to) and its full-ring `int3`.
        let address: UInt64
        let fullRingTrap: UInt64
        /// Where its code ends.
        let end: UInt64
        /// An allocation's stub: its exit part, second full-ring `int3`, stack copy and the
        /// address past its exit record (`ExitlessStub`).
        let exitPart: UInt64?
        let exitFullRingTrap: UInt64?
        let stackCopy: UInt64?
        let skipExitRecord: UInt64?
        /// The entry point (for an allocation made the trapped way when its window cannot be mapped).
        let site: AllocatorSite
        /// The instructions displaced after the first (the entry's patch is longer than it).
        let following: [PrologueInstruction]
        /// As `ExitlessPlacement.resumeDelta`: from the padding call's pushed address to the resume address.
        let resumeDelta: Int32
    }

    /// A prepared site: what to write where in the entry's file page, the entry's run first.
    struct Patches: Sendable, Equatable {
        struct Run: Sendable, Equatable {
            /// File offset.
            let offset: UInt64
            let written: [UInt8]
            /// The host file's bytes there.
            let original: [UInt8]
        }
        let placement: ExitlessPlacement
        let stub: Int
        let runs: [Run]
    }

    private struct State {
        var tables = ExitlessPageTables()
        var stubs: [Stub] = []
        var codeUsed = 0
        var planners: [String: ExitlessPlanner?] = [:]
        /// The task last seen trapping with this thread pointer in this space (ring records carry
        /// the thread pointer only; `ThreadKey` also has the task).
        var tasks: [PageTableRoot: [UInt64: UInt64]] = [:]
        /// Set when the code page cannot be mapped: no more sites are prepared.
        var refused: String?
        /// Set at detach: the region is gone, no more sites are prepared.
        var detached = false
        /// Spaces whose first fault at the code page was answered (a second one falls back).
        var codeFaulted: Set<PageTableRoot> = []
        /// Prepared sites by host file and entry offset: a site armed again (its page was evicted
        /// and read back) gets the same padding and stub.
        var prepared: [String: [UInt64: Patches]] = [:]
        /// Each host file's bytes (the originals of the padding).
        var fileBytes: [String: [UInt8]] = [:]
    }

    init(region: MonitorRegion, ringCapacity: Int = ExitlessLayout.ringCapacity) {
        self.region = region
        self.ringCapacity = ringCapacity
    }

    var stubs: [Stub] { state.withLock { $0.stubs } }

    /// Why the path is off (the code page could not be mapped), if it is.
    var refusal: String? { state.withLock { $0.refused } }

    // MARK: arming

    /// Prepares `site` of the host file `hostPath` for the exitless path: the code page mapped
    /// (through `root`'s PGD entry 511, shared by every process), a placement in the entry's page,
    /// and its stub written. Nil when the site keeps its `int3` (the reason, if worth a note, in `note`).
    func prepare(_ site: AllocatorSite, hostPath: String, root: PageTableRoot, mode: PageTableMode, memory: GuestMemory,
                 note: (String) -> Void) -> Patches? {
        guard ExitlessStub.supports(site.entryPoint.function) else { return nil }
        return state.withLock { s -> Patches? in
            if s.refused != nil || s.detached { return nil }
            guard mode == .fourLevel else {
                s.refused = "the guest uses \(mode) paging; the exitless path needs 4-level paging"
                note("exitless: " + s.refused!)
                return nil
            }
            if !s.tables.codeMapped {
                do {
                    try s.tables.mapCode(pages: ExitlessLayout.codePages, root: root, memory: memory, region: region)
                } catch {
                    s.refused = "the code page could not be mapped: \(error)"
                    note("exitless: " + s.refused!)
                    return nil
                }
            }
            if let again = s.prepared[hostPath]?[site.fileOffset] { return again }
            if s.planners[hostPath] == nil {
                // Read once: a file that cannot be planned stays nil (its entries keep their int3).
                let made = Self.planner(hostPath)
                s.planners[hostPath] = .some(made?.planner)
                s.fileBytes[hostPath] = made?.bytes
            }
            guard var planner = s.planners[hostPath] ?? nil,
                  let (placement, following) = Self.place(site, planner: &planner, file: s.fileBytes[hostPath] ?? []) else {
                if UserAllocationTracker.tracing { UserAllocationTracker.trace("exitless: \(site.symbol) in \(hostPath): no placement") }
                return nil
            }
            s.planners[hostPath] = planner
            let index = s.stubs.count
            guard let stub = ExitlessStub.make(function: site.entryPoint.function, stub: index,
                                               resumeDelta: placement.resumeDelta, displaced: site.instruction,
                                               following: following, capacity: ringCapacity),
                  s.codeUsed + stub.code.count <= ExitlessLayout.codePages * 4096,
                  let page = s.tables.codePageFrames.first else {
                if UserAllocationTracker.tracing { UserAllocationTracker.trace("exitless: \(site.symbol) in \(hostPath): no stub (\(site.instruction))") }
                return nil
            }
            let address = ExitlessLayout.codeAddress + UInt64(s.codeUsed)
            guard (try? region.memory.write(stub.code, at: page.offset(s.codeUsed))) != nil else { return nil }
            s.codeUsed += (stub.code.count + 15) & ~15
            func at(_ offset: Int?) -> UInt64? { offset.map { address + UInt64($0) } }
            s.stubs.append(Stub(address: address,
                                fullRingTrap: address + UInt64(stub.fullRingTrap), end: address + UInt64(stub.code.count),
                                exitPart: at(stub.exitPart), exitFullRingTrap: at(stub.exitFullRingTrap),
                                stackCopy: at(stub.stackCopy), skipExitRecord: at(stub.skipExitRecord), site: site,
                                following: following, resumeDelta: placement.resumeDelta))
            let file = s.fileBytes[hostPath] ?? []
            func original(_ offset: UInt64, _ count: Int) -> [UInt8] {
                offset + UInt64(count) <= UInt64(file.count) ? Array(file[Int(offset)..<Int(offset) + count]) : []
            }
            let patches = Patches(placement: placement, stub: index, runs: placement.runs(stub: address).map {
                Patches.Run(offset: $0.offset, written: $0.bytes, original: original($0.offset, $0.bytes.count))
            })
            s.prepared[hostPath, default: [:]][site.fileOffset] = patches
            return patches
        }
    }

    /// Where `site`'s patch goes, and the instructions it displaces after the first: the entry's
    /// `jmp rel8` over its first instruction (with the next one when that is a 1-byte `push`) and
    /// padding reached from it; else a `call rel32` at the entry itself over the first
    /// instructions of at least 5 bytes (when no 5 bytes of padding are in reach). Instructions
    /// displaced after the first must start where no direct branch lands (`mayBranch`).
    static func place(_ site: AllocatorSite, planner: inout ExitlessPlanner, file: [UInt8]) -> (ExitlessPlacement, [PrologueInstruction])? {
        if let following = displaced(after: site, covering: 2, planner: planner, file: file),
           let placement = planner.place(entry: site.fileOffset, displacedLength: displacedLength(site, following)) {
            return (placement, following)
        }
        // The entry's 5 bytes are written in one aligned 8-byte store: they must lie in one word.
        guard site.fileOffset & 7 <= 3, let following = displaced(after: site, covering: 5, planner: planner, file: file),
              let placement = planner.placeCall(entry: site.fileOffset, displacedLength: displacedLength(site, following))
        else { return nil }
        return (placement, following)
    }

    /// Bytes of `site`'s first instruction and the `following` ones displaced with it.
    static func displacedLength(_ site: AllocatorSite, _ following: [PrologueInstruction]) -> Int {
        following.reduce(site.instruction.length) { $0 + $1.length }
    }

    /// The instructions after `site`'s first that a patch of `bytes` bytes also covers; nil when
    /// one cannot be decoded, or starts where a branch may land, or one before the last runs
    /// differently elsewhere. For 2 bytes, only a 1-byte `push` gets a second instruction.
    static func displaced(after site: AllocatorSite, covering bytes: Int, planner: ExitlessPlanner, file: [UInt8]) -> [PrologueInstruction]? {
        var length = site.instruction.length
        if bytes == 2, length == 1 {
            guard case .push = site.instruction.operation else { return nil }
        }
        var following: [PrologueInstruction] = []
        var previous = site.instruction
        while length < bytes {
            let next = Int(site.fileOffset) + length
            guard ExitlessStub.runsAnywhere(previous), next < file.count,
                  let instruction = PrologueInstruction.decode(Array(file[next..<min(file.count, next + 15)])),
                  !planner.mayBranch(to: UInt64(next), in: file) else { return nil }
            following.append(instruction)
            length += instruction.length
            previous = instruction
        }
        return following
    }

    private static func planner(_ hostPath: String) -> (planner: ExitlessPlanner, bytes: [UInt8])? {
        guard let file = try? ELFFile(path: hostPath),
              let data = try? Data(contentsOf: URL(fileURLWithPath: hostPath)) else { return nil }
        let bytes = [UInt8](data)
        let segments = file.loadSegments.filter(\.isExecutable).map { (offset: $0.offset, size: $0.fileSize) }
        return (ExitlessPlanner(bytes: bytes, segments: segments, table: CallFrameTable(file: file)), bytes)
    }

    // MARK: traps

    /// What a user page fault at the code page or a window means.
    enum FaultOutcome: Equatable {
        /// Not at the code page or a window.
        case notOurs
        /// The missing entry is written: the thread retries the access.
        case mapped
        /// The space cannot have its window (or the access faulted again after it was mapped):
        /// the thread is in `stub`, before its record, and the call is to be made the trapped way.
        case fallback(stub: Stub, atEntry: Bool)
        /// The same in an allocation's exit part: the thread resumes at `resume`, past its exit record.
        case skipExit(resume: UInt64)
        /// An allocation's stack copy met a page the thread cannot read: the copy stops there (the
        /// thread resumes after the copy instruction, with rcx the words not copied).
        case copyCut(resume: UInt64)
    }

    /// A user-mode page fault at `address` with the thread at `rip` in space `root`.
    func fault(at address: UInt64, rip: UInt64, root: PageTableRoot, memory: GuestMemory) -> FaultOutcome {
        let code = ExitlessLayout.isCode(address), window = ExitlessLayout.isWindow(address)
        guard code || window || ExitlessLayout.isCode(rip) else { return .notOurs }
        return state.withLock { s -> FaultOutcome in
            // The stub the thread is in: at its entry (a code fault) or past it (a window fault, or
            // a fault of its stack copy).
            let stub = s.stubs.last { $0.address <= rip && rip < $0.end }
            if !code, !window {
                guard let stub, rip == stub.stackCopy else { return .notOurs }
                return .copyCut(resume: rip + 3)
            }
            if code {
                if !s.codeFaulted.contains(root), (try? s.tables.grantCode(to: root, memory: memory)) != nil {
                    s.codeFaulted.insert(root)
                    return .mapped
                }
                guard let stub, rip == stub.address else { return .notOurs }
                return .fallback(stub: stub, atEntry: true)
            }
            guard let stub else { return .notOurs }
            if s.tables.windows[root] == nil {
                if (try? s.tables.mapWindow(for: root, capacity: ringCapacity, memory: memory, region: region)) != nil { return .mapped }
            } else if (try? s.tables.relinkWindow(for: root, memory: memory)) == true {
                return .mapped
            }
            if let exitPart = stub.exitPart, let skip = stub.skipExitRecord, rip >= exitPart { return .skipExit(resume: skip) }
            return .fallback(stub: stub, atEntry: false)
        }
    }

    /// Whether `rip` is a stub's full-ring `int3`.
    func isFullRingTrap(_ rip: UInt64) -> Bool {
        state.withLock { s in s.stubs.contains { $0.fullRingTrap == rip || $0.exitFullRingTrap == rip } }
    }

    // MARK: rings

    /// The records `root`'s ring holds now, each with its stub.
    func drain(_ root: PageTableRoot) -> [(record: RingRecord, stub: Stub)] {
        state.withLock { s in
            guard var window = s.tables.windows[root] else { return [] }
            let records = window.reader.drain(region.memory, stubs: s.stubs.map(\.function))
            s.tables.windows[root] = window
            return records.map { ($0, s.stubs[$0.stub]) }
        }
    }

    /// The spaces that have a window.
    var spacesWithWindows: [PageTableRoot] { state.withLock { Array($0.tables.windows.keys) } }

    /// Records ring by ring malformed so far.
    var malformedRecords: Int { state.withLock { $0.tables.windows.values.reduce(0) { $0 + $1.reader.malformed } } }

    /// The space ends (drain its ring first). Its window stays, keyed by the PGD frame: KVM may
    /// keep a shadow of the frame's entries, so clearing the entry here would not stop a process
    /// that gets the frame next from reaching the window (a write the monitor makes is not seen
    /// by KVM's shadow paging). That process uses the window, and its records are read as its
    /// own: the ring was drained at this exit. A new process whose PGD shows no entry gets it
    /// linked again on its first fault.
    func spaceEnded(_ root: PageTableRoot) {
        state.withLock { s in
            s.tasks[root] = nil
            s.codeFaulted.remove(root)
            if let header = s.tables.windows[root]?.reader.header { try? EventRingReader.resetStackLimit(header, in: region.memory) }
        }
    }

    /// The main thread's stack ends at `limit` in `root` (a stack copy faulted there): later copies
    /// from below it stop there instead of faulting.
    func setStackLimit(_ limit: UInt64, root: PageTableRoot) {
        state.withLock { s in
            guard let header = s.tables.windows[root]?.reader.header else { return }
            try? region.memory.store(limit, at: header.offset(ExitlessLayout.Header.stackLimit))
        }
    }

    /// Detach: every entry the path added to guest page tables is cleared, then the region is
    /// taken away from the guest (drain the rings and restore the page-cache patches first).
    func unmapAll(memory: GuestMemory) {
        state.withLock { s in
            s.tables.unmapAll(memory: memory, region: region)
            s.tasks = [:]
            s.codeFaulted = []
            // The region's slot is gone: arming again after detach uses `int3`s only.
            s.detached = true
            s.stubs = []
            s.prepared = [:]
        }
        region.revoke()
    }

    // MARK: threads

    /// Remembers the task of a trapping thread, for the ring records of the same thread.
    func noteTask(_ task: UInt64, root: PageTableRoot, threadPointer: UInt64) {
        guard task != 0 else { return }
        state.withLock { $0.tasks[root, default: [:]][threadPointer] = task }
    }

    func task(root: PageTableRoot, threadPointer: UInt64) -> UInt64 {
        state.withLock { $0.tasks[root]?[threadPointer] ?? 0 }
    }
}
