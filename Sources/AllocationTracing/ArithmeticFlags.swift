/// The six status flags of RFLAGS that x86 arithmetic sets, computed as the CPU does.
struct ArithmeticFlags: Equatable {
    static let carry: UInt64 = 1 << 0
    static let parity: UInt64 = 1 << 2
    static let adjust: UInt64 = 1 << 4
    static let zero: UInt64 = 1 << 6
    static let sign: UInt64 = 1 << 7
    static let overflow: UInt64 = 1 << 11
    /// CF, PF, AF, ZF, SF and OF.
    static let statusMask: UInt64 = carry | parity | adjust | zero | sign | overflow

    /// The status bits, positioned as in RFLAGS.
    var bits: UInt64

    /// `rflags` with its status bits replaced by these; other bits unchanged.
    func applied(to rflags: UInt64) -> UInt64 { (rflags & ~Self.statusMask) | bits }

    /// The flags and truncated difference of `a − b` in a `width`-bit operation (8, 16, 32 or 64;
    /// operands already truncated to `width`): SUB and CMP.
    static func subtraction(_ a: UInt64, _ b: UInt64, width: Int) -> (result: UInt64, flags: ArithmeticFlags) {
        let mask = widthMask(width)
        let signBit: UInt64 = 1 << (width - 1)
        let result = (a &- b) & mask
        var bits = resultBits(result, width: width)
        if a < b { bits |= carry }
        if (a ^ b ^ result) & 0x10 != 0 { bits |= adjust }
        if (a ^ b) & (a ^ result) & signBit != 0 { bits |= overflow }
        return (result, ArithmeticFlags(bits: bits))
    }

    /// The flags of a logical operation (AND, TEST) whose truncated result is `result`: CF = OF = 0,
    /// SF/ZF/PF from the result. AF is architecturally undefined; it is cleared.
    static func logical(_ result: UInt64, width: Int) -> ArithmeticFlags {
        ArithmeticFlags(bits: resultBits(result & widthMask(width), width: width))
    }

    /// ZF, SF and PF (parity of the low byte) of a truncated result.
    private static func resultBits(_ result: UInt64, width: Int) -> UInt64 {
        var bits: UInt64 = 0
        if result == 0 { bits |= zero }
        if result & (1 << (width - 1)) != 0 { bits |= sign }
        if (result & 0xFF).nonzeroBitCount % 2 == 0 { bits |= parity }
        return bits
    }

    static func widthMask(_ width: Int) -> UInt64 { width >= 64 ? ~0 : (1 << width) - 1 }
}
