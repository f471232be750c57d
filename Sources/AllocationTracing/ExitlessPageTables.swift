import GuestMemory
import X86

/// Why a page of the exitless path could not be mapped into an address space.
enum ExitlessMappingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A table on the path is not present, is a large page, or is not in guest RAM.
    case unexpectedEntry(level: String, value: UInt64)
    /// The entry the path needs is already used by the guest (nothing is written over it).
    case slotInUse(level: String, value: UInt64)
    /// The monitor region has no page left.
    case regionFull
    case memory(GuestMemoryError)

    var description: String {
        switch self {
        case .unexpectedEntry(let level, let value): return "the \(level) entry on the path is \(hex(value)), not a present table"
        case .slotInUse(let level, let value): return "the \(level) entry the monitor needs holds \(hex(value)) already"
        case .regionFull: return "the monitor region is full"
        case .memory(let error): return "\(error)"
        }
    }
}

/// The entries the exitless path adds to guest page tables, and each guest word it changed with
/// its value before, so that detaching puts back exactly what it found (and only where the word
/// still holds what the monitor wrote). `docs/exitless-tracking.md` has the layout.
///
/// The code page is mapped once, under the kernel's own (shared) tables for the top of the address
/// space; each address space then only needs the U bit on its PGD entry 511. Each address space
/// gets its own window (PGD entry 509) with its own ring. Entries are only ever added (a not-present
/// entry made present, a permission added): on kvm_pvm's shadow paging and on hardware paging
/// alike, the next access sees them without a flush.
struct ExitlessPageTables: Sendable {
    /// One guest word the monitor wrote.
    struct Change: Sendable, Equatable {
        let address: GuestPhysicalAddress
        let before: UInt64
        let after: UInt64
    }

    /// One address space's window.
    struct Window: Sendable {
        /// Its PGD entry 509 (and the value written there).
        let entry: Change
        /// Pages of the region: the three tables, then the ring (header first).
        let pages: [GuestPhysicalAddress]
        var reader: EventRingReader
        /// The PGD entry 511 whose U bit this space needed (nil: it had it).
        var codeGrant: Change?
    }

    /// Changes to tables every address space shares (the kernel's), in order.
    private(set) var shared: [Change] = []
    /// Region pages of the code mapping (its leaf table first).
    private(set) var codePages: [GuestPhysicalAddress] = []
    /// Windows by address space.
    var windows: [PageTableRoot: Window] = [:]
    /// U bits granted on PGD entries 511 of spaces that have no window (yet).
    private(set) var codeGrants: [PageTableRoot: Change] = [:]

    static let present: UInt64 = 1, writable: UInt64 = 2, user: UInt64 = 4, largePage: UInt64 = 0x80
    static let noExecute: UInt64 = 1 << 63
    static let frameMask: UInt64 = 0x000F_FFFF_FFFF_F000

    var codeMapped: Bool { !codePages.isEmpty }

    /// The code page's frames, in order (contiguous in the region).
    var codePageFrames: [GuestPhysicalAddress] { Array(codePages.dropFirst()) }

    /// Maps `pages` pages of the region, filled with `int3`, at `ExitlessLayout.codeAddress` under
    /// the kernel tables that `root`'s PGD entry 511 leads to (shared by every process).
    mutating func mapCode(pages pageCount: Int, root: PageTableRoot, memory: GuestMemory, region: MonitorRegion) throws(ExitlessMappingError) {
        guard !codeMapped else { return }
        let pgd = Self.entryAddress(root.tableAddress, index: ExitlessLayout.codeSlot)
        let pud = try Self.table(at: pgd, level: "PGD 511", memory: memory)
        let pudEntry = Self.entryAddress(pud, index: 511)
        let pmd = try Self.table(at: pudEntry, level: "PUD 511", memory: memory)
        let pmdEntry = Self.entryAddress(pmd, index: 511)
        let old = try Self.load(pmdEntry, memory: memory)
        guard old == 0 else { throw .slotInUse(level: "PMD 511 (top 2 MiB)", value: old) }
        var pages: [GuestPhysicalAddress] = []
        for _ in 0...pageCount {
            guard let page = region.allocatePage() else {
                pages.forEach(region.freePage)
                throw .regionFull
            }
            pages.append(page)
        }
        // The stubs are written across page boundaries: the code frames must follow each other.
        guard zip(pages.dropFirst(), pages.dropFirst(2)).allSatisfy({ $1.rawValue == $0.rawValue + 4096 }) else {
            pages.forEach(region.freePage)
            throw .regionFull
        }
        do {
            for k in 0..<pageCount {
                try region.memory.fill(0xCC, at: pages[1 + k], count: 4096)
                // Read and execute only; the process cannot change its stubs.
                try region.memory.store(pages[1 + k].rawValue | Self.present | Self.user, at: pages[0].offset(8 * k))
            }
        } catch { throw .memory(error) }
        codePages = pages
        try Self.change(pmdEntry, to: pages[0].rawValue | Self.present | Self.writable | Self.user, from: 0, memory: memory, into: &shared)
        let pudValue = try Self.load(pudEntry, memory: memory)
        if pudValue & Self.user == 0 {
            try Self.change(pudEntry, to: pudValue | Self.user, from: pudValue, memory: memory, into: &shared)
        }
    }

    /// Whether the monitor set the U bit on `root`'s PGD entry 511 (or it has a window).
    func codeGranted(to root: PageTableRoot) -> Bool {
        codeGrants[root] != nil || windows[root]?.codeGrant != nil
    }

    /// Sets the U bit on `root`'s PGD entry 511, so that its user code reaches the code page.
    mutating func grantCode(to root: PageTableRoot, memory: GuestMemory) throws(ExitlessMappingError) {
        let address = Self.entryAddress(root.tableAddress, index: ExitlessLayout.codeSlot)
        let value = try Self.load(address, memory: memory)
        guard value & Self.present != 0, value & Self.largePage == 0 else { throw .unexpectedEntry(level: "PGD 511", value: value) }
        guard value & Self.user == 0 else { return }
        var made: [Change] = []
        try Self.change(address, to: value | Self.user, from: value, memory: memory, into: &made)
        if windows[root] != nil { windows[root]?.codeGrant = made[0] } else { codeGrants[root] = made[0] }
    }

    /// Maps a new window with an empty ring of `capacity` records at `ExitlessLayout.windowAddress` in `root`.
    mutating func mapWindow(for root: PageTableRoot, capacity: Int = ExitlessLayout.ringCapacity, memory: GuestMemory,
                            region: MonitorRegion) throws(ExitlessMappingError) {
        guard windows[root] == nil else { return }
        let address = Self.entryAddress(root.tableAddress, index: ExitlessLayout.windowSlot)
        let old = try Self.load(address, memory: memory)
        guard old == 0 else { throw .slotInUse(level: "PGD 509", value: old) }
        var pages: [GuestPhysicalAddress] = []
        let windowPages = ExitlessLayout.windowPages(capacity: capacity)
        for _ in 0..<(3 + windowPages) {
            guard let page = region.allocatePage() else {
                pages.forEach(region.freePage)
                throw .regionFull
            }
            pages.append(page)
        }
        let link = Self.present | Self.writable | Self.user
        do {
            try region.memory.store(pages[1].rawValue | link, at: pages[0])          // PUD[0] → PMD
            try region.memory.store(pages[2].rawValue | link, at: pages[1])          // PMD[0] → PT
            for k in 0..<windowPages {
                try region.memory.store(pages[3 + k].rawValue | link | Self.noExecute, at: pages[2].offset(8 * k))
            }
            try EventRingReader.format(pages[3], capacity: capacity, in: region.memory)
        } catch {
            pages.forEach(region.freePage)
            throw .memory(error)
        }
        var made: [Change] = []
        do {
            try Self.change(address, to: pages[0].rawValue | link, from: 0, memory: memory, into: &made)
        } catch {
            pages.forEach(region.freePage)
            throw error
        }
        windows[root] = Window(entry: made[0], pages: pages, reader: EventRingReader(header: pages[3], capacity: capacity),
                               codeGrant: codeGrants.removeValue(forKey: root))
    }

    /// Links `root`'s window into its PGD entry 509 again when that entry is empty (a new process
    /// got the PGD frame of an ended one: its window, drained at that exit, serves the new one).
    /// False when the entry holds something else, or already the window (the fault is not a
    /// missing link).
    mutating func relinkWindow(for root: PageTableRoot, memory: GuestMemory) throws(ExitlessMappingError) -> Bool {
        guard let window = windows[root] else { return false }
        let current = try Self.load(window.entry.address, memory: memory)
        guard current == 0 else { return false }
        do { try memory.store(window.entry.after, at: window.entry.address) } catch { throw .memory(error) }
        return true
    }

    /// Forgets `root`'s window and grant, its pages given back to the region; its PGD entries are
    /// cleared where they still hold what the monitor wrote. For a space that ends (its PGD is
    /// freed after) and for detach.
    mutating func unmap(_ root: PageTableRoot, memory: GuestMemory, region: MonitorRegion) {
        if let window = windows.removeValue(forKey: root) {
            Self.undo(window.entry, memory: memory)
            if let grant = window.codeGrant { Self.undo(grant, memory: memory) }
            window.pages.forEach(region.freePage)
        }
        if let grant = codeGrants.removeValue(forKey: root) { Self.undo(grant, memory: memory) }
    }

    /// Detach: every space's entries, then the shared ones, in reverse order; the code pages given back.
    mutating func unmapAll(memory: GuestMemory, region: MonitorRegion) {
        for root in Array(windows.keys) + Array(codeGrants.keys) { unmap(root, memory: memory, region: region) }
        for made in shared.reversed() { Self.undo(made, memory: memory) }
        shared = []
        codePages.forEach(region.freePage)
        codePages = []
    }

    /// Puts `made.before` back if the word still holds `made.after` (the guest may have changed it since).
    static func undo(_ made: Change, memory: GuestMemory) {
        guard (try? memory.load(UInt64.self, at: made.address)) == made.after else { return }
        try? memory.store(made.before, at: made.address)
    }

    private static func change(_ address: GuestPhysicalAddress, to value: UInt64, from before: UInt64, memory: GuestMemory,
                                 into log: inout [Change]) throws(ExitlessMappingError) {
        do { try memory.store(value, at: address) } catch { throw .memory(error) }
        log.append(Change(address: address, before: before, after: value))
    }

    static func entryAddress(_ table: GuestPhysicalAddress, index: Int) -> GuestPhysicalAddress { table.offset(8 * index) }

    static func load(_ address: GuestPhysicalAddress, memory: GuestMemory) throws(ExitlessMappingError) -> UInt64 {
        do { return try memory.load(UInt64.self, at: address) } catch { throw .memory(error) }
    }

    /// The table a present, non-large entry at `address` points to (in guest RAM).
    static func table(at address: GuestPhysicalAddress, level: String, memory: GuestMemory) throws(ExitlessMappingError) -> GuestPhysicalAddress {
        let value = try load(address, memory: memory)
        let table = GuestPhysicalAddress(value & frameMask)
        guard value & present != 0, value & largePage == 0, memory.contains(table, length: 4096) else {
            throw .unexpectedEntry(level: level, value: value)
        }
        return table
    }
}
