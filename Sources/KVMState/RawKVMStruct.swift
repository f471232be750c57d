/// A fixed-layout KVM structure (kvm_regs, kvm_sregs, kvm_lapic_state, ...) kept as its bytes.
/// The layout is the kernel's x86-64 ABI, so the bytes are the portable form; any bytes of the
/// right length are a valid value of `T` (plain C data), so decoding can only fail on length.
public struct RawKVMStruct<T>: Sendable, Equatable {
    public let bytes: [UInt8]

    public static var size: Int { MemoryLayout<T>.size }

    public init(_ value: T) {
        var v = value
        bytes = withUnsafeBytes(of: &v) { Array($0) }
    }

    /// Fails unless `bytes` is exactly `MemoryLayout<T>.size` long.
    public init(bytes: [UInt8], section: String) throws(KVMStateFormatError) {
        guard bytes.count == Self.size else {
            throw .badSectionLength(section: section, length: bytes.count, expected: "\(Self.size)")
        }
        self.bytes = bytes
    }

    /// The structure, ready for a KVM_SET_* call.
    public var value: T {
        bytes.withUnsafeBytes { raw in
            // A zeroed T, overwritten byte for byte: no alignment assumption on the array.
            let out = UnsafeMutableRawPointer.allocate(byteCount: Self.size, alignment: MemoryLayout<T>.alignment)
            defer { out.deallocate() }
            out.initializeMemory(as: UInt8.self, repeating: 0, count: Self.size)
            if let base = raw.baseAddress { out.copyMemory(from: base, byteCount: min(raw.count, Self.size)) }
            return out.load(as: T.self)
        }
    }
}
