import Boot
import KVM
import Testing

@testable import VMM

/// A KVM_GET_SUPPORTED_CPUID-like table with every feature bit set, so clearing is visible.
private let supported: [CPUIDEntry] = [
    CPUIDEntry(function: 0, eax: 0x1F, ebx: 0x756E_6547, ecx: 0x6C65_746E, edx: 0x4965_6E69),
    CPUIDEntry(function: 1, eax: 0x000A_0671, ebx: 0xFF42_0800, ecx: 0xFFFF_FFFF, edx: 0xFFFF_FFFF),
    CPUIDEntry(function: 7, index: 0, flags: 1, eax: 0, ebx: 0xFFFF_FFFF, ecx: 0xFFFF_FFFF, edx: 0xFFFF_FFFF),
    CPUIDEntry(function: 0xB, index: 0, flags: 1, eax: 1, ebx: 1, ecx: 0x100, edx: 0xAA),
    CPUIDEntry(function: 0xB, index: 1, flags: 1, eax: 4, ebx: 4, ecx: 0x201, edx: 0xAA),
    CPUIDEntry(function: 0x1F, index: 0, flags: 1, eax: 1, ebx: 1, ecx: 0x100, edx: 0xAA),
    CPUIDEntry(function: 0x4000_0000, eax: 0x4000_0001, ebx: 0x4B4D_564B, ecx: 0x564B_4D56, edx: 0x4D),
    CPUIDEntry(function: 0x4000_0001, eax: 0xFFFF_FFFF, ebx: 0, ecx: 0, edx: 0xFFFF_FFFF),
    CPUIDEntry(function: 0x8000_0000, eax: 0x8000_0008),
    CPUIDEntry(function: 0x8000_0001, ecx: 0xFFFF_FFFF, edx: 0xFFFF_FFFF),
]

private func leaf(_ entries: [CPUIDEntry], _ function: UInt32, _ index: UInt32 = 0) -> CPUIDEntry? {
    entries.first { $0.function == function && $0.index == index }
}

@Suite struct CPUIDPolicyTests {
    static let cx16: UInt32 = 1 << 13
    static let rdtscp: UInt32 = 1 << 27
    static let pvBits: [UInt32] = [4, 7, 11, 13, 14]

    @Test func pvmClearsCX16RDTSCPAndParavirtualFeatures() throws {
        let out = PVMHostPolicy().cpuid(supported: supported, vcpu: 0, of: 1)
        #expect(out.count == supported.count)
        #expect(out.map(\.function) == supported.map(\.function))

        let l1 = try #require(leaf(out, 1))
        #expect(l1.ecx == 0xFFFF_FFFF & ~Self.cx16)
        #expect(l1.eax == 0x000A_0671)

        let ext = try #require(leaf(out, 0x8000_0001))
        #expect(ext.edx == 0xFFFF_FFFF & ~Self.rdtscp)
        #expect(ext.ecx == 0xFFFF_FFFF)               // LAHF, LZCNT, ... untouched

        let pv = try #require(leaf(out, 0x4000_0001))
        for bit in Self.pvBits { #expect(pv.eax & (1 << bit) == 0, "KVM PV feature bit \(bit) must be hidden") }
        let hidden = Self.pvBits.reduce(UInt32(0)) { $0 | (1 << $1) }
        #expect(hidden == 0x6890)
        #expect(pv.eax == ~hidden)                     // clocksource, steal time, PV EOI, ... stay
        #expect(pv.edx == 0xFFFF_FFFF)

        // Leaves the policy does not care about are passed through unchanged.
        for f: UInt32 in [0, 7, 0x4000_0000, 0x8000_0000] {
            #expect(leaf(out, f) == leaf(supported, f))
        }
    }

    @Test func hardwareKeepsEverything() throws {
        let out = HardwareHostPolicy().cpuid(supported: supported, vcpu: 0, of: 1)
        let l1 = try #require(leaf(out, 1))
        #expect(l1.ecx & Self.cx16 != 0)
        #expect(l1.ecx == 0xFFFF_FFFF)
        #expect(leaf(out, 0x8000_0001) == leaf(supported, 0x8000_0001))
        #expect(leaf(out, 0x4000_0001) == leaf(supported, 0x4000_0001))
        #expect(HardwareHostPolicy().kernelArguments(tscKHz: 2_000_000).isEmpty)
    }

    @Test(arguments: [(0, 1), (0, 4), (1, 4), (3, 4), (63, 64)])
    func apicIDPerVCPU(index: Int, count: Int) throws {
        for policy in [PVMHostPolicy() as any HostPolicy, HardwareHostPolicy()] {
            let out = policy.cpuid(supported: supported, vcpu: index, of: count)
            let l1 = try #require(leaf(out, 1))
            #expect(l1.ebx >> 24 == UInt32(index), "initial APIC id in CPUID.1:EBX[31:24]")
            #expect((l1.ebx >> 16) & 0xFF == UInt32(count), "logical processor count in EBX[23:16]")
            #expect(l1.ebx & 0xFFFF == 0x0800, "brand index and CLFLUSH size kept")
            // x2APIC ids in the extended topology leaves, every subleaf.
            #expect(leaf(out, 0xB, 0)?.edx == UInt32(index))
            #expect(leaf(out, 0xB, 1)?.edx == UInt32(index))
            #expect(leaf(out, 0x1F, 0)?.edx == UInt32(index))
            #expect(leaf(out, 0xB, 1)?.ecx == 0x201)
        }
    }

    @Test func htt() throws {
        var noHTT = supported
        noHTT[1].edx &= ~(1 << 28)
        let single = try #require(leaf(PVMHostPolicy().cpuid(supported: noHTT, vcpu: 0, of: 1), 1))
        #expect(single.edx & (1 << 28) == 0)
        let multi = try #require(leaf(PVMHostPolicy().cpuid(supported: noHTT, vcpu: 1, of: 2), 1))
        #expect(multi.edx & (1 << 28) != 0)
    }

    @Test func policyDoesNotNeedEveryLeaf() {
        // A host that reports no PV or extended leaves: nothing is invented.
        let out = PVMHostPolicy().cpuid(supported: [CPUIDEntry(function: 0, eax: 1)], vcpu: 0, of: 1)
        #expect(out == [CPUIDEntry(function: 0, eax: 1)])
    }

    @Test func localAPICIsAdvertisedOnBothHosts() throws {
        var noAPIC = supported
        for i in noAPIC.indices where noAPIC[i].function == 1 { noAPIC[i].edx &= ~(1 << 9) }
        for policy in [PVMHostPolicy() as any HostPolicy, HardwareHostPolicy()] {
            let l1 = try #require(leaf(policy.cpuid(supported: noAPIC, vcpu: 0, of: 1), 1))
            #expect(l1.edx & (1 << 9) != 0)
        }
    }

    // MARK: kernel command line

    @Test func pvmKernelArguments() throws {
        let args = PVMHostPolicy(timeDilation: 10).kernelArguments(tscKHz: 2_000_000)
        #expect(args.contains("noxsave"))
        // Time dilation: the guest is told the TSC runs 10x faster and uses it as its clock.
        #expect(args.contains("tsc_early_khz=20000000"))
        #expect(args.contains("no-kvmclock"))
        #expect(args.contains("initcall_blacklist=trace_eval_init,ftrace_check_for_weak_functions"))
        let undilated = PVMHostPolicy(timeDilation: 1).kernelArguments(tscKHz: 2_000_000)
        #expect(!undilated.contains { $0.hasPrefix("tsc_early_khz=") || $0 == "no-kvmclock" })
        let clear = args.filter { $0.hasPrefix("clearcpuid=") }
        #expect(clear.count == 1)
        let value = try #require(clear.first).dropFirst("clearcpuid=".count)
        // Linux 6.1 copies the value into a 128-byte buffer: at most 127 characters survive.
        #expect(value.count < 128)
        #expect(value.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ",") })
        let numbers = value.split(separator: ",").compactMap { Int($0) }
        #expect(numbers == PVMHostPolicy.clearedFeatureBits)
        #expect(Set(numbers).count == numbers.count)
        #expect(numbers.allSatisfy { $0 < 21 * 32 })   // NCAPINTS of 6.1

        // A few X86_FEATURE_* numbers (word * 32 + bit) from Linux 6.1 cpufeatures.h.
        let known = ["popcnt": 4 * 32 + 23, "movbe": 4 * 32 + 22, "avx": 4 * 32 + 28, "avx2": 9 * 32 + 5,
                     "smap": 9 * 32 + 20, "invpcid": 9 * 32 + 10, "rdpid": 16 * 32 + 22, "xsave": 4 * 32 + 26]
        for name in ["popcnt", "movbe", "avx", "avx2", "smap", "invpcid", "rdpid"] {
            #expect(numbers.contains(known[name]!), "\(name) should be cleared")
        }
        // XSAVE is handled by `noxsave`, CX16 through CPUID: neither belongs in the list.
        #expect(!numbers.contains(known["xsave"]!))
        #expect(!numbers.contains(4 * 32 + 13))

        // The words are valid on a kernel command line and fit with the standard words.
        var line = try KernelCommandLine(StandardKernelArguments.words(verbose: false).joined(separator: " "))
        try line.append(args.joined(separator: " "))
        #expect(line.contains(key: "noxsave"))
        #expect(line.contains(key: "clearcpuid"))
        #expect(try line.encoded(maximum: 2047).count < 2048)
    }

    @Test func policyNames() {
        #expect(PVMHostPolicy().name.contains("pvm"))
        #expect(HardwareHostPolicy().name.contains("VMX"))
    }
}

// MARK: - EmulationReport

@Suite struct EmulationReportTests {
    @Test(arguments: [
        ([0x48, 0x0F, 0xC7, 0x0E], "cmpxchg8b/16b"),          // cmpxchg16b [rsi]
        ([0xF0, 0x48, 0x0F, 0xC7, 0x0F], "cmpxchg8b/16b"),    // lock cmpxchg16b [rdi]
        ([0x0F, 0xC7, 0x0E], "cmpxchg8b/16b"),                // cmpxchg8b [rsi]
        ([0x0F, 0xAE, 0x2F], "xrstor"),                       // xrstor [rdi]
        ([0x48, 0x0F, 0xAE, 0x2F], "xrstor"),                 // xrstor64
        ([0x0F, 0xAE, 0x27], "xsave"),
        ([0x0F, 0xAE, 0x10], "ldmxcsr"),
        ([0x0F, 0xAE, 0x18], "stmxcsr"),
        ([0x0F, 0x01, 0xCA], "clac"),
        ([0x0F, 0x01, 0xCB], "stac"),
        ([0x0F, 0x01, 0xD0], "xgetbv"),
        ([0xF3, 0x48, 0x0F, 0xB8, 0xC7], "popcnt"),
        ([0xC5, 0xF8, 0x77], "VEX/EVEX-encoded instruction"),  // vzeroupper
        ([0xC4, 0xE2, 0x79, 0x18, 0x06], "VEX/EVEX-encoded instruction"),
        ([0x62, 0xF1, 0x7C, 0x48, 0x10, 0x06], "VEX/EVEX-encoded instruction"),
    ] as [([UInt8], String)])
    func recognizesUnsupportedFamilies(bytes: [UInt8], name: String) {
        #expect(EmulationReport.guess(bytes) == name)
    }

    @Test(arguments: [
        [],
        [0x0F, 0xC7],                 // too short
        [0x90, 0x90, 0x90],           // nop
        [0xCC, 0x90, 0x90],           // int3
        [0x0F, 0xAE, 0x38],           // clflush: /7
        [0xF3, 0x0F, 0xC7, 0xF8],     // rdpid: 0f c7 /7, not /1
        [0x66, 0x66, 0x66, 0x66],     // prefixes only
    ] as [[UInt8]])
    func unknownOrShortBytesGiveNoGuess(bytes: [UInt8]) {
        #expect(EmulationReport.guess(bytes) == nil)
    }

    @Test func hexIsZeroPaddedTo16Digits() {
        #expect(EmulationReport.hex(0) == "0x0000000000000000")
        #expect(EmulationReport.hex(0xFFFF_FFFF_8100_0000) == "0xffffffff81000000")
        #expect(EmulationReport.hex(0x42) == "0x0000000000000042")
    }
}

@Suite struct BreakpointLengthTests {
    @Test func recognizesBothBreakpointEncodings() {
        #expect(EmulatorFixups.breakpointLength([0xCC, 0x90]) == 1)
        #expect(EmulatorFixups.breakpointLength([0xCD, 0x03]) == 2)
        #expect(EmulatorFixups.breakpointLength([0xCD, 0x80]) == nil)
        #expect(EmulatorFixups.breakpointLength([0x9B]) == nil)
        #expect(EmulatorFixups.breakpointLength([]) == nil)
    }
}
