import BinaryCoding
import CKVM
import KVM

/// The versioned binary encoding of a `VMState`, little-endian:
///
///     header (32 bytes): magic "LVKVMST\0", version u32, reserved u32 (0),
///                        payload length u64, CRC-32 of the payload u32, reserved u32 (0)
///     payload: sections { tag u32, length u32, bytes }
///
/// VM sections: 1/2/3 PIC master/PIC slave/IOAPIC (kvm_irqchip), 4 PIT (kvm_pit_state2),
/// 5 clock (u64 ns), 16 one vCPU (repeated, in order; its payload is vCPU sections).
/// vCPU sections: 1 id u32, 2 CPUID (28-byte entries: function, index, flags, eax..edx),
/// 3 kvm_regs, 4 kvm_sregs, 5 MSRs (12-byte entries: index u32, value u64), 6 XSAVE area,
/// 7 kvm_fpu, 8 kvm_xcrs, 9 kvm_lapic_state, 10 kvm_vcpu_events, 11 kvm_debugregs,
/// 12 MP state u32, 13 TSC kHz u32. KVM structures are their x86-64 kernel ABI bytes.
/// Decoding checks everything (lengths, counts, checksum, unknown and repeated sections) and
/// fails with `KVMStateFormatError`.
public enum KVMStateFormat {
    public static let magic: [UInt8] = Array("LVKVMST".utf8) + [0]
    public static let version: UInt32 = 1
    static let headerSize = 32
    static let maxVCPUs = 4096
    static let maxCPUIDEntries = 256
    static let maxMSRs = 4096
    static let maxXSAVEBytes = 1 << 20

    enum VMTag: UInt32, CaseIterable { case picMaster = 1, picSlave, ioapic, pit, clock, vcpu = 16 }
    enum VCPUTag: UInt32, CaseIterable {
        case id = 1, cpuid, registers, specialRegisters, msrs, xsave, fpu, xcrs, lapic, events, debugRegisters
        case mpState, tscKHz
    }

    public static func encode(_ state: VMState) -> [UInt8] {
        var payload = LittleEndianWriter()
        if let s = state.picMaster { payload.section(VMTag.picMaster.rawValue, s.bytes) }
        if let s = state.picSlave { payload.section(VMTag.picSlave.rawValue, s.bytes) }
        if let s = state.ioapic { payload.section(VMTag.ioapic.rawValue, s.bytes) }
        if let s = state.pit { payload.section(VMTag.pit.rawValue, s.bytes) }
        if let c = state.clockNanoseconds { payload.section(VMTag.clock.rawValue, u64Bytes(c)) }
        for vcpu in state.vcpus { payload.section(VMTag.vcpu.rawValue, encode(vcpu)) }
        var out = LittleEndianWriter()
        out.raw(magic)
        out.u32(version)
        out.u32(0)
        out.u64(UInt64(payload.bytes.count))
        out.u32(CRC32.checksum(payload.bytes))
        out.u32(0)
        out.raw(payload.bytes)
        return out.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(KVMStateFormatError) -> VMState {
        var header = ByteCursor(bytes)
        guard try header.take(magic.count) == magic else { throw .badMagic }
        let v = try header.u32()
        guard v == version else { throw .unsupportedVersion(v) }
        _ = try header.u32()
        let length = try header.u64()
        let stored = try header.u32()
        _ = try header.u32()
        guard length == UInt64(header.remaining) else { throw .lengthMismatch(declared: length, actual: header.remaining) }
        let payload = try header.take(header.remaining)
        let computed = CRC32.checksum(payload)
        guard computed == stored else { throw .checksumMismatch(stored: stored, computed: computed) }

        var cursor = ByteCursor(payload)
        let sections = try cursor.sections(in: "VM state", known: Set(VMTag.allCases.map(\.rawValue)),
                                           repeatable: [VMTag.vcpu.rawValue])
        var state = VMState(vcpus: [])
        for (tag, body) in sections {
            switch VMTag(rawValue: tag) {
            case .picMaster: state.picMaster = try RawKVMStruct(bytes: body, section: "PIC master")
            case .picSlave: state.picSlave = try RawKVMStruct(bytes: body, section: "PIC slave")
            case .ioapic: state.ioapic = try RawKVMStruct(bytes: body, section: "IOAPIC")
            case .pit: state.pit = try RawKVMStruct(bytes: body, section: "PIT")
            case .clock: state.clockNanoseconds = try fixedU64(body, section: "clock")
            case .vcpu:
                guard state.vcpus.count < maxVCPUs else {
                    throw .tooMany("vCPUs", count: state.vcpus.count + 1, limit: maxVCPUs)
                }
                state.vcpus.append(try decodeVCPU(body))
            case nil: throw .unknownSection(tag: tag, in: "VM state")
            }
        }
        return state
    }

    static func encode(_ s: VCPUState) -> [UInt8] {
        var out = LittleEndianWriter()
        out.section(VCPUTag.id.rawValue, u32Bytes(s.id))
        var cpuid = LittleEndianWriter()
        for e in s.cpuid.prefix(maxCPUIDEntries) {
            for v in [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx] { cpuid.u32(v) }
        }
        out.section(VCPUTag.cpuid.rawValue, cpuid.bytes)
        out.section(VCPUTag.registers.rawValue, s.registers.bytes)
        out.section(VCPUTag.specialRegisters.rawValue, s.specialRegisters.bytes)
        var msrs = LittleEndianWriter()
        for m in s.msrs.prefix(maxMSRs) { msrs.u32(m.index); msrs.u64(m.value) }
        out.section(VCPUTag.msrs.rawValue, msrs.bytes)
        switch s.floatingPoint {
        case .xsave(let area)?: out.section(VCPUTag.xsave.rawValue, Array(area.prefix(maxXSAVEBytes)))
        case .fpu(let fpu)?: out.section(VCPUTag.fpu.rawValue, fpu.bytes)
        case nil: break
        }
        if let x = s.extendedControlRegisters { out.section(VCPUTag.xcrs.rawValue, x.bytes) }
        if let l = s.localAPIC { out.section(VCPUTag.lapic.rawValue, l.bytes) }
        if let e = s.events { out.section(VCPUTag.events.rawValue, e.bytes) }
        if let d = s.debugRegisters { out.section(VCPUTag.debugRegisters.rawValue, d.bytes) }
        if let m = s.mpState { out.section(VCPUTag.mpState.rawValue, u32Bytes(m)) }
        if let t = s.tscKHz { out.section(VCPUTag.tscKHz.rawValue, u32Bytes(t)) }
        return out.bytes
    }

    static func decodeVCPU(_ bytes: [UInt8]) throws(KVMStateFormatError) -> VCPUState {
        var cursor = ByteCursor(bytes)
        let sections = try cursor.sections(in: "vCPU state", known: Set(VCPUTag.allCases.map(\.rawValue)))
        var found: [VCPUTag: [UInt8]] = [:]
        for (tag, body) in sections {
            guard let t = VCPUTag(rawValue: tag) else { throw .unknownSection(tag: tag, in: "vCPU state") }
            found[t] = body
        }
        func need(_ tag: VCPUTag, _ name: String) throws(KVMStateFormatError) -> [UInt8] {
            guard let body = found[tag] else { throw .missingSection("vCPU \(name)") }
            return body
        }
        let id = try fixedU32(try need(.id, "id"), section: "vCPU id")
        let cpuid = try decodeCPUID(try need(.cpuid, "CPUID"))
        let regs: RawKVMStruct<kvm_regs> = try RawKVMStruct(bytes: try need(.registers, "REGS"), section: "REGS")
        let sregs: RawKVMStruct<kvm_sregs> = try RawKVMStruct(bytes: try need(.specialRegisters, "SREGS"), section: "SREGS")
        let msrs = try decodeMSRs(found[.msrs] ?? [])
        var state = VCPUState(id: id, cpuid: cpuid, registers: regs, specialRegisters: sregs, msrs: msrs)
        switch (found[.xsave], found[.fpu]) {
        case (let area?, nil):
            guard area.count >= RawKVMStruct<kvm_xsave>.size, area.count <= maxXSAVEBytes else {
                throw .badSectionLength(section: "XSAVE", length: area.count,
                                        expected: "\(RawKVMStruct<kvm_xsave>.size)...\(maxXSAVEBytes)")
            }
            state.floatingPoint = .xsave(area)
        case (nil, let fpu?): state.floatingPoint = .fpu(try RawKVMStruct(bytes: fpu, section: "FPU"))
        case (nil, nil): break
        case (_?, _?): throw .duplicateSection(tag: VCPUTag.fpu.rawValue, in: "vCPU state (XSAVE and FPU)")
        }
        if let b = found[.xcrs] { state.extendedControlRegisters = try RawKVMStruct(bytes: b, section: "XCRS") }
        if let b = found[.lapic] { state.localAPIC = try RawKVMStruct(bytes: b, section: "LAPIC") }
        if let b = found[.events] { state.events = try RawKVMStruct(bytes: b, section: "VCPU_EVENTS") }
        if let b = found[.debugRegisters] { state.debugRegisters = try RawKVMStruct(bytes: b, section: "DEBUGREGS") }
        if let b = found[.mpState] { state.mpState = try fixedU32(b, section: "MP_STATE") }
        if let b = found[.tscKHz] { state.tscKHz = try fixedU32(b, section: "TSC_KHZ") }
        return state
    }

    static func decodeCPUID(_ body: [UInt8]) throws(KVMStateFormatError) -> [CPUIDEntry] {
        guard body.count % 28 == 0 else {
            throw .badSectionLength(section: "CPUID", length: body.count, expected: "a multiple of 28")
        }
        let count = body.count / 28
        guard count <= maxCPUIDEntries else { throw .tooMany("CPUID entries", count: count, limit: maxCPUIDEntries) }
        return (0..<count).map { i in
            let v = (0..<7).map { body.littleEndianU32(at: 28 * i + 4 * $0) }
            return CPUIDEntry(function: v[0], index: v[1], flags: v[2], eax: v[3], ebx: v[4], ecx: v[5], edx: v[6])
        }
    }

    static func decodeMSRs(_ body: [UInt8]) throws(KVMStateFormatError) -> [MSREntry] {
        guard body.count % 12 == 0 else {
            throw .badSectionLength(section: "MSRs", length: body.count, expected: "a multiple of 12")
        }
        let count = body.count / 12
        guard count <= maxMSRs else { throw .tooMany("MSRs", count: count, limit: maxMSRs) }
        var cursor = ByteCursor(body)
        var out: [MSREntry] = []
        for _ in 0..<count { out.append(MSREntry(index: try cursor.u32(), value: try cursor.u64())) }
        return out
    }

    private static func fixedU32(_ body: [UInt8], section: String) throws(KVMStateFormatError) -> UInt32 {
        guard body.count == 4 else { throw .badSectionLength(section: section, length: body.count, expected: "4") }
        return body.littleEndianU32(at: 0)
    }

    private static func fixedU64(_ body: [UInt8], section: String) throws(KVMStateFormatError) -> UInt64 {
        guard body.count == 8 else { throw .badSectionLength(section: section, length: body.count, expected: "8") }
        var cursor = ByteCursor(body)
        return try cursor.u64()
    }

    private static func u32Bytes(_ v: UInt32) -> [UInt8] { var s = LittleEndianWriter(); s.u32(v); return s.bytes }
    private static func u64Bytes(_ v: UInt64) -> [UInt8] { var s = LittleEndianWriter(); s.u64(v); return s.bytes }
}
