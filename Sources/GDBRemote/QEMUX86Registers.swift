import X86

/// One vCPU's registers as QEMU's x86-64 gdbstub sends them in a `g` reply and takes them in `G`:
/// 16 general registers, rip, eflags, the six segment selectors, FS/GS/kernel-GS bases, CR0, CR2,
/// CR3, CR4, CR8, EFER, the x87 stack and control words, xmm0-15 and MXCSR (608 bytes; QEMU's
/// target XML also names ss/ds/es bases that its `g` block does not carry).
public struct QEMUX86Registers: Sendable, Equatable {
    public static let byteCount = 608
    static let generalOrder = 16
    static let ripOffset = 128, eflagsOffset = 136, selectorsOffset = 140
    static let fsBaseOffset = 164, gsBaseOffset = 172, kernelGSBaseOffset = 180
    static let cr0Offset = 188, cr2Offset = 196, cr3Offset = 204, cr4Offset = 212, cr8Offset = 220, eferOffset = 228
    static let xmmOffset = 348, mxcsrOffset = 604

    /// The block as received; setters patch it so that `G` writes back everything else unchanged.
    public private(set) var bytes: [UInt8]

    public init(bytes: [UInt8]) throws(GDBRemoteError) {
        guard bytes.count == Self.byteCount else { throw .unexpectedRegisters(bytes: bytes.count, expected: Self.byteCount) }
        self.bytes = bytes
    }

    /// From the hex text of a `g` reply.
    public init(hex: String) throws(GDBRemoteError) {
        guard let bytes = GDBHex.decode(hex) else { throw .malformed("a register block that is not hexadecimal") }
        try self.init(bytes: bytes)
    }

    public var hex: String { GDBHex.encode(bytes) }

    func word(_ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }

    mutating func setWord(_ offset: Int, _ value: UInt64) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    func word32(_ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: word(offset) & 0xFFFF_FFFF) }

    mutating func setWord32(_ offset: Int, _ value: UInt32) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    /// rax..r15 in the stub's order (rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15), rip and rflags.
    public var general: GeneralRegisters {
        get {
            var r = GeneralRegisters()
            let w = (0..<16).map { word($0 * 8) }
            (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) = (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
            (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) = (w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15])
            r.rip = word(Self.ripOffset)
            r.rflags = UInt64(word32(Self.eflagsOffset))
            return r
        }
        set {
            let w = [newValue.rax, newValue.rbx, newValue.rcx, newValue.rdx, newValue.rsi, newValue.rdi, newValue.rbp, newValue.rsp,
                     newValue.r8, newValue.r9, newValue.r10, newValue.r11, newValue.r12, newValue.r13, newValue.r14, newValue.r15]
            for (i, value) in w.enumerated() { setWord(i * 8, value) }
            setWord(Self.ripOffset, newValue.rip)
            setWord32(Self.eflagsOffset, UInt32(truncatingIfNeeded: newValue.rflags))
        }
    }

    /// Segment selectors in the stub's order.
    public enum Segment: Int, Sendable { case cs = 0, ss, ds, es, fs, gs }

    public func selector(_ segment: Segment) -> UInt16 { UInt16(truncatingIfNeeded: word32(Self.selectorsOffset + 4 * segment.rawValue)) }

    /// Sets a selector; QEMU loads the descriptor from the guest's GDT when the value changes
    /// (CS and SS also set the privilege level).
    public mutating func setSelector(_ segment: Segment, _ value: UInt16) {
        setWord32(Self.selectorsOffset + 4 * segment.rawValue, UInt32(value))
    }

    public var fsBase: UInt64 { word(Self.fsBaseOffset) }
    public var gsBase: UInt64 { word(Self.gsBaseOffset) }
    public var kernelGSBase: UInt64 { word(Self.kernelGSBaseOffset) }
    public var cr0: UInt64 { word(Self.cr0Offset) }
    public var cr2: UInt64 {
        get { word(Self.cr2Offset) }
        set { setWord(Self.cr2Offset, newValue) }
    }
    public var cr3: UInt64 { word(Self.cr3Offset) }
    public var cr4: UInt64 { word(Self.cr4Offset) }
    public var efer: UInt64 { word(Self.eferOffset) }
    /// Current privilege level: the RPL of CS, which equals CS.DPL in 64-bit code.
    public var privilegeLevel: Int { Int(selector(.cs) & 3) }
    /// xmm0-15 as 32 little-endian words (low, high of each).
    public var vectorWords: [UInt64] { (0..<32).map { word(Self.xmmOffset + 8 * $0) } }
}
