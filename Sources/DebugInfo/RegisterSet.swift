/// The x86-64 general registers of a user thread: the initial state of an unwind.
public struct RegisterSet: Sendable, Hashable {
    public var rax: UInt64 = 0
    public var rdx: UInt64 = 0
    public var rcx: UInt64 = 0
    public var rbx: UInt64 = 0
    public var rsi: UInt64 = 0
    public var rdi: UInt64 = 0
    public var rbp: UInt64 = 0
    public var rsp: UInt64 = 0
    public var r8: UInt64 = 0
    public var r9: UInt64 = 0
    public var r10: UInt64 = 0
    public var r11: UInt64 = 0
    public var r12: UInt64 = 0
    public var r13: UInt64 = 0
    public var r14: UInt64 = 0
    public var r15: UInt64 = 0
    public var rip: UInt64 = 0

    /// All registers zero; set the ones known.
    public init() {}

    /// Registers from the 17 values in DWARF order (see `dwarfRegisters`); missing values are 0,
    /// extra values ignored.
    public init(dwarfRegisters values: [UInt64]) {
        func value(_ index: Int) -> UInt64 { index < values.count ? values[index] : 0 }
        (rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp) =
            (value(0), value(1), value(2), value(3), value(4), value(5), value(6), value(7))
        (r8, r9, r10, r11, r12, r13, r14, r15) =
            (value(8), value(9), value(10), value(11), value(12), value(13), value(14), value(15))
        rip = value(16)
    }

    /// The registers in x86-64 DWARF numbering: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp,
    /// 7 rsp, 8–15 r8–r15, 16 rip (the return-address column).
    public var dwarfRegisters: [UInt64] {
        [rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8, r9, r10, r11, r12, r13, r14, r15, rip]
    }

    /// DWARF register numbers of the frame and stack pointers, and the return-address column.
    static let dwarfFramePointer: UInt32 = 6
    static let dwarfStackPointer: UInt32 = 7
    static let dwarfReturnAddress: UInt32 = 16
}
