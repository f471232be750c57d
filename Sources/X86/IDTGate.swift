/// A 64-bit IDT gate descriptor (16 bytes, read as two little-endian words).
public enum IDTGate {
    /// The handler address of a present gate; nil when the present bit is clear.
    public static func handler(low: UInt64, high: UInt64) -> UInt64? {
        guard (low >> 47) & 1 == 1 else { return nil }
        return (low & 0xFFFF) | ((low >> 32) & 0xFFFF_0000) | ((high & 0xFFFF_FFFF) << 32)
    }
}
