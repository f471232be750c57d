/// Builds a little-endian binary record: fixed-size integers, raw bytes, counted byte strings and
/// tagged sections (the snapshot and KVM-state formats).
public struct LittleEndianWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func raw(_ b: [UInt8]) { bytes += b }

    /// A u32 length, then the bytes. The caller keeps `b` under 4 GiB (its format's limits are far lower).
    public mutating func counted(_ b: [UInt8]) {
        u32(UInt32(truncatingIfNeeded: b.count))
        raw(b)
    }

    /// A section: u32 tag, u32 byte length, payload. The caller keeps the payload under 4 GiB.
    public mutating func section(_ tag: UInt32, _ payload: [UInt8]) {
        u32(tag)
        u32(UInt32(truncatingIfNeeded: payload.count))
        raw(payload)
    }
}
