/// The vector registers in an XSAVE area, as the words a conservative scan takes for roots.
///
/// Both layouts keep the legacy region (x87, MXCSR, xmm0–15 at byte 160) and the XSAVE header (at
/// byte 512: XSTATE_BV, then XCOMP_BV). The AVX component (the upper halves of ymm0–15) is at byte
/// 576 in the standard form (KVM_GET_XSAVE), and also in the compacted form (XSAVES, what the guest
/// kernel keeps in `fpstate`) when it is present, since it is the first extended component.
/// Components XSTATE_BV marks as in their initial state hold zeros in the registers (the area may
/// hold stale bytes there), so they give no words. Every read is bounds-checked: the area may come
/// from guest memory.
public enum XSAVEArea {
    static let legacyXMM = 160, header = 512, avx = 576
    static let sseBit: UInt64 = 1 << 1, avxBit: UInt64 = 1 << 2, compactedBit: UInt64 = 1 << 63

    /// xmm0–15 (32 words) and, when in use, the upper halves of ymm0–15 (32 more).
    public static func vectorRegisterWords(_ area: [UInt8]) -> [UInt64] {
        func word(_ offset: Int) -> UInt64? {
            guard offset >= 0, offset <= area.count - 8 else { return nil }
            var value: UInt64 = 0
            for k in 0..<8 { value |= UInt64(area[offset + k]) << (8 * UInt64(k)) }
            return value
        }
        guard let present = word(header) else { return [] }
        var words: [UInt64] = []
        if present & sseBit != 0 {
            for k in 0..<32 { if let w = word(legacyXMM + 8 * k) { words.append(w) } }
        }
        let compacted = word(header + 8).map { $0 & compactedBit != 0 } ?? false
        let avxStored = !compacted || (word(header + 8).map { $0 & avxBit != 0 } ?? false)
        if present & avxBit != 0, avxStored {
            for k in 0..<32 { if let w = word(avx + 8 * k) { words.append(w) } }
        }
        return words
    }
}
