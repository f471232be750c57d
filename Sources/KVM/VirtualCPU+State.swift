import CKVM
import Glibc

/// The per-vCPU state ioctls a snapshot needs beyond registers, special registers, FPU, LAPIC
/// and events (those live in VirtualCPU.swift). Each throws `KVMError.ioctl` with the errno the
/// host returned; `KVMError.isRefusalByHost` tells an absent feature from a failed call.
extension VirtualCPU {
    /// KVM_GET_MSRS for `indices` in one call. KVM stops at the first MSR it cannot read, so the
    /// result is the prefix of `indices` that it read (possibly shorter than `indices`).
    public func msrs(_ indices: [UInt32]) throws(KVMError) -> [MSREntry] {
        if indices.isEmpty { return [] }
        let buffer = Self.msrBuffer(indices.map { MSREntry(index: $0, value: 0) })
        defer { buffer.deallocate() }
        let n = Int(try checked("KVM_GET_MSRS", ckvm_ioctl_ptr(fd, CKVM_GET_MSRS, buffer)))
        return (0..<min(n, indices.count)).map { i in
            MSREntry(index: buffer.load(fromByteOffset: 8 + 16 * i, as: UInt32.self),
                     value: buffer.load(fromByteOffset: 8 + 16 * i + 8, as: UInt64.self))
        }
    }

    /// KVM_SET_MSRS for `entries` in one call; returns how many KVM wrote (it stops at the
    /// first MSR it refuses, so `entries[result]` is the refused one when result < count).
    public func setMSRs(_ entries: [MSREntry]) throws(KVMError) -> Int {
        if entries.isEmpty { return 0 }
        let buffer = Self.msrBuffer(entries)
        defer { buffer.deallocate() }
        return Int(try checked("KVM_SET_MSRS", ckvm_ioctl_ptr(fd, CKVM_SET_MSRS, buffer)))
    }

    /// struct kvm_msrs { __u32 nmsrs; __u32 pad; struct kvm_msr_entry entries[]; } (16-byte entries).
    private static func msrBuffer(_ entries: [MSREntry]) -> UnsafeMutableRawPointer {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8 + 16 * entries.count, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 8 + 16 * entries.count)
        buffer.storeBytes(of: UInt32(entries.count), as: UInt32.self)
        for (i, e) in entries.enumerated() {
            buffer.storeBytes(of: e.index, toByteOffset: 8 + 16 * i, as: UInt32.self)
            buffer.storeBytes(of: e.value, toByteOffset: 8 + 16 * i + 8, as: UInt64.self)
        }
        return buffer
    }

    /// The XSAVE area: KVM_GET_XSAVE2 into `size` bytes when the host reports KVM_CAP_XSAVE2
    /// (`KVMSystem.xsave2Size`), else KVM_GET_XSAVE (4096 bytes).
    public func xsave(size: Int?) throws(KVMError) -> [UInt8] {
        let length = max(size ?? 0, MemoryLayout<kvm_xsave>.size)
        var bytes = [UInt8](repeating: 0, count: length)
        let (request, name) = size == nil ? (CKVM_GET_XSAVE, "KVM_GET_XSAVE") : (CKVM_GET_XSAVE2, "KVM_GET_XSAVE2")
        let rc = bytes.withUnsafeMutableBytes { ckvm_ioctl_ptr(fd, request, $0.baseAddress) }
        _ = try checked(name, rc)
        return bytes
    }

    /// KVM_SET_XSAVE. KVM reads as many bytes as its own XSAVE2 size, so a shorter area is
    /// zero-padded to `size` (and to at least 4096 bytes).
    public func setXSAVE(_ area: [UInt8], size: Int?) throws(KVMError) {
        var bytes = area
        let length = max(size ?? 0, MemoryLayout<kvm_xsave>.size)
        if bytes.count < length { bytes += [UInt8](repeating: 0, count: length - bytes.count) }
        let rc = bytes.withUnsafeMutableBytes { ckvm_ioctl_ptr(fd, CKVM_SET_XSAVE, $0.baseAddress) }
        _ = try checked("KVM_SET_XSAVE", rc)
    }

    public func extendedControlRegisters() throws(KVMError) -> kvm_xcrs {
        var x = kvm_xcrs()
        _ = try checked("KVM_GET_XCRS", ckvm_ioctl_ptr(fd, CKVM_GET_XCRS, &x))
        return x
    }

    public func setExtendedControlRegisters(_ xcrs: kvm_xcrs) throws(KVMError) {
        var x = xcrs
        _ = try checked("KVM_SET_XCRS", ckvm_ioctl_ptr(fd, CKVM_SET_XCRS, &x))
    }

    public func debugRegisters() throws(KVMError) -> kvm_debugregs {
        var d = kvm_debugregs()
        _ = try checked("KVM_GET_DEBUGREGS", ckvm_ioctl_ptr(fd, CKVM_GET_DEBUGREGS, &d))
        return d
    }

    public func setDebugRegisters(_ regs: kvm_debugregs) throws(KVMError) {
        var d = regs
        _ = try checked("KVM_SET_DEBUGREGS", ckvm_ioctl_ptr(fd, CKVM_SET_DEBUGREGS, &d))
    }

    /// KVM_GET_MP_STATE (runnable, halted, waiting for INIT/SIPI, ...).
    public func mpState() throws(KVMError) -> kvm_mp_state {
        var m = kvm_mp_state()
        _ = try checked("KVM_GET_MP_STATE", ckvm_ioctl_ptr(fd, CKVM_GET_MP_STATE, &m))
        return m
    }

    public func setMPState(_ state: kvm_mp_state) throws(KVMError) {
        var m = state
        _ = try checked("KVM_SET_MP_STATE", ckvm_ioctl_ptr(fd, CKVM_SET_MP_STATE, &m))
    }

    /// KVM_SET_TSC_KHZ: the guest TSC frequency (needs TSC scaling unless it equals the host's).
    public func setTSCKHz(_ khz: UInt32) throws(KVMError) {
        _ = try checked("KVM_SET_TSC_KHZ", ckvm_ioctl_val(fd, CKVM_SET_TSC_KHZ, UInt(khz)))
    }

    /// The CPUID table set on this vCPU (KVM_GET_CPUID2).
    public func cpuid() throws(KVMError) -> [CPUIDEntry] {
        var table = ckvm_cpuid()
        table.nent = UInt32(CKVM_MAX_CPUID_ENTRIES)
        _ = try checked("KVM_GET_CPUID2", ckvm_ioctl_ptr(fd, CKVM_GET_CPUID2, &table))
        return withUnsafeBytes(of: &table.entries) { raw in
            let entries = raw.bindMemory(to: kvm_cpuid_entry2.self)
            return (0..<min(Int(table.nent), Int(CKVM_MAX_CPUID_ENTRIES))).map { CPUIDEntry(entries[$0]) }
        }
    }
}
