import BinaryCoding
import CKVM
import KVM
import Testing

@testable import KVMState

/// The KVM state encoding on its own, without KVM: a round trip, and every kind of bad input
/// (truncated, corrupt, wrong version, hostile section layout) ending in a typed error.
@Suite struct KVMStateFormatTests {
    /// A state with every part present; the structures' bytes are a recognisable pattern.
    static func sampleState(vcpus: Int = 2) -> VMState {
        func raw<T>(_ type: T.Type, seed: UInt8) -> RawKVMStruct<T> {
            let bytes = (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
            return try! RawKVMStruct<T>(bytes: bytes, section: "test")
        }
        let cpus = (0..<vcpus).map { n in
            VCPUState(
                id: UInt32(n), cpuid: [CPUIDEntry(function: 0, eax: 0xD), CPUIDEntry(function: 7, index: 0, flags: 1, ebx: 9)],
                registers: raw(kvm_regs.self, seed: UInt8(n)), specialRegisters: raw(kvm_sregs.self, seed: 1),
                msrs: [MSREntry(index: 0x10, value: 123_456_789), MSREntry(index: 0xC000_0080, value: 0x501)],
                floatingPoint: n == 0 ? .xsave((0..<4096).map { UInt8(truncatingIfNeeded: $0) }) : .fpu(raw(kvm_fpu.self, seed: 3)),
                extendedControlRegisters: raw(kvm_xcrs.self, seed: 4), localAPIC: raw(kvm_lapic_state.self, seed: 5),
                events: raw(kvm_vcpu_events.self, seed: 6), debugRegisters: raw(kvm_debugregs.self, seed: 7),
                mpState: 0, tscKHz: 2_400_000)
        }
        return VMState(picMaster: raw(kvm_irqchip.self, seed: 8), picSlave: raw(kvm_irqchip.self, seed: 9),
                       ioapic: raw(kvm_irqchip.self, seed: 10), pit: raw(kvm_pit_state2.self, seed: 11),
                       clockNanoseconds: 987_654_321, vcpus: cpus)
    }

    /// Header + payload with a correct length and checksum, for hostile payload tests.
    static func wrap(_ payload: [UInt8], version: UInt32 = KVMStateFormat.version) -> [UInt8] {
        var out = LittleEndianWriter()
        out.raw(KVMStateFormat.magic)
        out.u32(version)
        out.u32(0)
        out.u64(UInt64(payload.count))
        out.u32(CRC32.checksum(payload))
        out.u32(0)
        out.raw(payload)
        return out.bytes
    }

    static func expectFormatError(_ bytes: [UInt8], _ check: (KVMStateFormatError) -> Bool = { _ in true },
                                  sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let state = try KVMStateFormat.decode(bytes)
            Issue.record("decoded bad input into \(state.vcpus.count) vCPUs", sourceLocation: sourceLocation)
        } catch {
            #expect(check(error), "unexpected \(error)", sourceLocation: sourceLocation)
            #expect(!error.description.isEmpty, sourceLocation: sourceLocation)
        }
    }

    @Test func roundTripKeepsEveryPart() throws {
        let state = Self.sampleState()
        let bytes = KVMStateFormat.encode(state)
        #expect(Array(bytes.prefix(8)) == Array("LVKVMST".utf8) + [0])
        #expect(try KVMStateFormat.decode(bytes) == state)
        // Optional parts absent stay absent.
        let minimal = VMState(vcpus: [VCPUState(id: 3, cpuid: [], registers: RawKVMStruct(kvm_regs()),
                                                specialRegisters: RawKVMStruct(kvm_sregs()))])
        #expect(try KVMStateFormat.decode(KVMStateFormat.encode(minimal)) == minimal)
        #expect(try KVMStateFormat.decode(KVMStateFormat.encode(VMState(vcpus: []))) == VMState(vcpus: []))
    }

    @Test func rawStructValueRoundTrips() throws {
        var regs = kvm_regs()
        regs.rip = 0xFFFF_FFFF_8100_0000
        regs.r15 = 42
        let back = RawKVMStruct(regs).value
        #expect(back.rip == regs.rip && back.r15 == 42)
        #expect(throws: KVMStateFormatError.self) { try RawKVMStruct<kvm_regs>(bytes: [1, 2, 3], section: "REGS") }
    }

    @Test func everyTruncationIsATypedError() {
        let bytes = KVMStateFormat.encode(Self.sampleState(vcpus: 1))
        for length in Array(0..<64) + Array(stride(from: 64, to: bytes.count, by: 97)) + [bytes.count - 1] {
            Self.expectFormatError(Array(bytes.prefix(length)))
        }
    }

    @Test func corruptBytesAreCaughtByTheChecksum() {
        let bytes = KVMStateFormat.encode(Self.sampleState(vcpus: 1))
        for offset in stride(from: KVMStateFormat.headerSize, to: bytes.count, by: 61) {
            var bad = bytes
            bad[offset] ^= 0x40
            Self.expectFormatError(bad) { if case .checksumMismatch = $0 { return true } else { return false } }
        }
    }

    @Test func headerChecks() {
        var bytes = KVMStateFormat.encode(Self.sampleState(vcpus: 1))
        var badMagic = bytes
        badMagic[0] = UInt8(ascii: "X")
        Self.expectFormatError(badMagic) { $0 == .badMagic }
        Self.expectFormatError(Self.wrap([], version: 2)) { $0 == .unsupportedVersion(2) }
        bytes.append(0)   // a byte more than the header declares
        Self.expectFormatError(bytes) { if case .lengthMismatch = $0 { return true } else { return false } }
        var huge = KVMStateFormat.encode(VMState(vcpus: []))
        for i in 16..<24 { huge[i] = 0xFF }  // payload length 2^64-1
        Self.expectFormatError(huge) { if case .lengthMismatch = $0 { return true } else { return false } }
    }

    @Test func hostileSectionLayoutsAreTypedErrors() {
        func section(_ tag: UInt32, _ body: [UInt8]) -> [UInt8] {
            var s = LittleEndianWriter()
            s.section(tag, body)
            return s.bytes
        }
        let vcpu = KVMStateFormat.encode(Self.sampleState(vcpus: 1).vcpus[0])
        // Unknown and repeated VM sections.
        Self.expectFormatError(Self.wrap(section(99, []))) { $0 == .unknownSection(tag: 99, in: "VM state") }
        Self.expectFormatError(Self.wrap(section(5, [UInt8](repeating: 0, count: 8)) + section(5, [UInt8](repeating: 0, count: 8)))) {
            $0 == .duplicateSection(tag: 5, in: "VM state")
        }
        // A section longer than what is left.
        var lying = LittleEndianWriter()
        lying.u32(16)
        lying.u32(0xFFFF_FFFF)
        Self.expectFormatError(Self.wrap(lying.bytes)) { if case .truncated = $0 { return true } else { return false } }
        // Wrong fixed sizes.
        Self.expectFormatError(Self.wrap(section(1, [1, 2, 3]))) { if case .badSectionLength = $0 { return true } else { return false } }
        Self.expectFormatError(Self.wrap(section(5, [1, 2, 3]))) { if case .badSectionLength = $0 { return true } else { return false } }
        // A vCPU without REGS.
        let noRegs = section(1, [0, 0, 0, 0]) + section(2, []) + section(4, [UInt8](repeating: 0, count: MemoryLayout<kvm_sregs>.size))
        Self.expectFormatError(Self.wrap(section(16, noRegs))) { $0 == .missingSection("vCPU REGS") }
        // A vCPU with both XSAVE and FPU, a short XSAVE area, a ragged MSR list, too many CPUID entries.
        let both = vcpu + section(7, [UInt8](repeating: 0, count: MemoryLayout<kvm_fpu>.size))
        Self.expectFormatError(Self.wrap(section(16, both))) { if case .duplicateSection = $0 { return true } else { return false } }
        let base = KVMStateFormat.encode(VCPUState(id: 0, cpuid: [], registers: RawKVMStruct(kvm_regs()),
                                                   specialRegisters: RawKVMStruct(kvm_sregs())))
        Self.expectFormatError(Self.wrap(section(16, base + section(6, [0, 1])))) {
            if case .badSectionLength(section: "XSAVE", _, _) = $0 { return true } else { return false }
        }
        var msrPayload = LittleEndianWriter()
        msrPayload.section(1, [0, 0, 0, 0])
        msrPayload.section(2, [])
        msrPayload.section(3, [UInt8](repeating: 0, count: MemoryLayout<kvm_regs>.size))
        msrPayload.section(4, [UInt8](repeating: 0, count: MemoryLayout<kvm_sregs>.size))
        Self.expectFormatError(Self.wrap(section(16, msrPayload.bytes + section(5, [UInt8](repeating: 0, count: 13))))) {
            if case .badSectionLength(section: "MSRs", _, _) = $0 { return true } else { return false }
        }
        var manyCPUID = LittleEndianWriter()
        manyCPUID.section(1, [0, 0, 0, 0])
        manyCPUID.section(2, [UInt8](repeating: 0, count: 28 * 257))
        Self.expectFormatError(Self.wrap(section(16, manyCPUID.bytes))) {
            $0 == .tooMany("CPUID entries", count: 257, limit: 256)
        }
    }

    /// Random payloads with a valid header and checksum reach the section decoder: none may trap.
    @Test func randomPayloadsNeverTrap() {
        var random = DeterministicRandom(seed: 13)
        let good = KVMStateFormat.encode(Self.sampleState(vcpus: 1))
        let payload = Array(good[KVMStateFormat.headerSize...])
        for _ in 0..<400 {
            var p = payload
            // Damage a few bytes of the real payload (lengths and tags included), or cut it.
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let i = Int(random.next() % UInt64(p.count))
                p[i] = UInt8(truncatingIfNeeded: random.next())
            }
            if random.next() % 3 == 0 { p = Array(p.prefix(Int(random.next() % UInt64(p.count)))) }
            _ = try? KVMStateFormat.decode(Self.wrap(p))
        }
        for _ in 0..<200 {
            let p = (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next() % 24) }
            _ = try? KVMStateFormat.decode(Self.wrap(p))
        }
    }

    @Test func kvmStateKnowsNothingOfLinuxOrDebugInfo() throws {
        for (file, imported) in try ModuleLayeringTests.imports(of: "KVMState") {
            #expect(imported.isDisjoint(with: ["Introspection", "DebugInfo", "BTF", "VMM"]), "KVMState/\(file) imports \(imported.sorted())")
        }
    }
}
