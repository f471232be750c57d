import GuestMemory
import X86

/// Where the exitless path's pages are in every guest address space, and the event ring's layout
/// (`docs/exitless-tracking.md`). The stubs have these numbers built in.
enum ExitlessLayout {
    /// The code page: the top 2 MiB of the address space (PGD 511, PUD 511, PMD 511, entry 0), the
    /// one kernel range a `push imm32; ret` reaches from anywhere. Shared by every process.
    static let codeAddress: UInt64 = 0xFFFF_FFFF_FFE0_0000
    /// Pages of stubs mapped at `codeAddress` (read and execute only).
    static let codePages = 32
    /// The window of one address space: PGD slot 509 (an unused hole above the CPU entry area);
    /// the ring header in its first page, the records after it.
    static let windowAddress: UInt64 = 0xFFFF_FE80_0000_0000
    static let codeSlot = 511
    static let windowSlot = 509

    /// Bytes of one record: the commit word, the function, up to ten values, spare words.
    static let recordSize = 128
    /// log2 of `recordSize` (the stubs shift the index by it).
    static let recordShift: UInt8 = 7
    /// Bytes of the caller's stack an allocation's entry record copies (from rsp at entry up):
    /// what its stack is unwound from later (`perf --call-graph dwarf` does the same).
    static let stackCopyBytes = 2048
    static let stackCopyShift: UInt8 = 11
    /// Records in one ring by default (a power of two): 128 KiB of records and 512 KiB of stack copies.
    static let ringCapacity = 512
    /// Ring sizes a tracker accepts (`--exitless-ring-records`): a window fits one page table.
    static let ringCapacities = 16...512
    /// Pages of one window with a ring of `capacity` records: the header page, the records, then
    /// one stack copy per record.
    static func windowPages(capacity: Int = ringCapacity) -> Int {
        1 + (capacity * recordSize + 4095) / 4096 + (capacity * stackCopyBytes + 4095) / 4096
    }
    /// Byte offset of the stack copies in a window with a ring of `capacity` records.
    static func stackCopies(capacity: Int = ringCapacity) -> Int { 4096 + (capacity * recordSize + 4095) / 4096 * 4096 }
    /// The largest window (the range a fault is looked at in).
    static var windowPages: Int { windowPages(capacity: ringCapacities.upperBound) }

    /// Header fields (byte offsets in the window's first page).
    enum Header {
        static let magic = 0, head = 8, tail = 16, capacity = 24, recordSize = 32
        /// Where the main thread's stack ends (the first address a stack copy must not read; the
        /// monitor writes it when a copy faults there): a copy that starts below it stops there.
        static let stackLimit = 40
        static let magicValue: UInt64 = 0x3130_474E_4952_564C   // "LVRING01"
    }

    /// Record fields (byte offsets in a record).
    enum Record {
        /// `index + 1`, written last: the record is complete.
        static let commit = 0
        /// The allocator function (its index in `AllocatorFunction.allCases`).
        static let function = 8
        /// A release: the pointer released. An allocation's entry: the first argument (rdi); its
        /// exit: the result (rax).
        static let pointer = 16
        /// The return address of the call ([rsp] at entry).
        static let returnAddress = 24
        /// rsp at entry.
        static let stackPointer = 32
        /// The thread pointer (`fs:[0]`, glibc's TCB self-pointer: the FS base).
        static let threadPointer = 40
        /// The instruction after the displaced one, in this process (the entry's address + its length).
        static let resume = 48
        /// An allocation's entry: the second and third arguments (rsi, rdx), rbp, and how many
        /// words of the stack were copied (fewer than a slot's: the stack limit, or an unmapped page).
        static let secondArgument = 56
        static let thirdArgument = 64
        static let framePointer = 72
        static let copiedWords = 80
    }

    /// The function word's bit that marks an allocation's exit record (its result).
    static let exitRecordBit: Int32 = 1 << 30

    /// Whether a user page fault at `address` is at the code page or in the window.
    static func isCode(_ address: UInt64) -> Bool {
        address >= codeAddress && address < codeAddress + UInt64(codePages) * 4096
    }

    static func isWindow(_ address: UInt64) -> Bool {
        address >= windowAddress && address < windowAddress + UInt64(windowPages) * 4096
    }
}
