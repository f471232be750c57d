import GuestMemory

/// Walks the guest's x86-64 page tables (4- or 5-level; 4 KiB, 2 MiB and 1 GiB pages) for one
/// root. Every entry is read through bounds-checked guest memory and the walk visits exactly
/// `mode.levels` entries, so hostile tables (loops, self-references, wild pointers) end in a
/// result or a `TranslationError`. Leaf frames are not checked against guest RAM: a translation
/// can point outside it, and reading there fails later.
public struct PageTableWalker: Sendable {
    public let memory: GuestMemory
    public let root: PageTableRoot
    public let mode: PageTableMode

    public init(memory: GuestMemory, root: PageTableRoot, mode: PageTableMode) {
        self.memory = memory
        self.root = root
        self.mode = mode
    }

    public func translate(_ va: GuestVirtualAddress) throws(TranslationError) -> Translation {
        try translate(va) { _ in }
    }

    /// Translates `va` and calls `visit` with the guest-physical frame number of each table the
    /// walk reads an entry of, root first, in walk order: the last one holds the leaf entry (or the
    /// entry found not present). A guest write to none of them leaves the translation as it is.
    public func translate(_ va: GuestVirtualAddress, visitingTables visit: (UInt64) -> Void) throws(TranslationError) -> Translation {
        guard va.isCanonical(in: mode) else { throw .nonCanonical(va, mode: mode) }
        var table = root.tableAddress
        var pointer: GuestPhysicalAddress?     // the entry that led to `table`; nil for the root
        var writable = true, user = true, noExecute = false
        var level = mode.levels
        while true {
            let index = (va.rawValue >> UInt64(12 + 9 * (level - 1))) & 0x1FF
            let entryAddress = GuestPhysicalAddress(table.rawValue + index * 8)
            visit(table.rawValue >> 12)
            let entry: PageTableEntry
            do {
                entry = PageTableEntry(rawValue: try memory.load(UInt64.self, at: entryAddress))
            } catch {
                guard let pointer else { throw .rootOutsideMemory(va, root: table) }
                throw .tableOutsideMemory(va, level: level + 1, entryAddress: pointer, table: table)
            }
            guard entry.isPresent else { throw .notPresent(va, level: level, entryAddress: entryAddress) }
            writable = writable && entry.isWritable
            user = user && entry.isUser
            noExecute = noExecute || entry.isNoExecute
            if level == 1 || entry.isLargePage {
                guard let size = PageSize(leafLevel: level) else {
                    throw .reservedPageSize(va, level: level, entryAddress: entryAddress)
                }
                let permissions = PagePermissions(writable: writable, user: user, noExecute: noExecute)
                return Translation(virtualAddress: va, frame: entry.frame(of: size), pageSize: size, permissions: permissions)
            }
            pointer = entryAddress
            table = entry.tableAddress
            level -= 1
        }
    }
}
