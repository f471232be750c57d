@testable import Introspection

/// The ORC tables with an `orc_entry` layout from the input (a crafted vmlinux's BTF gives any):
/// 9 signed layout bytes (size, sp_offset, bp_offset, flags byte, sp_reg bit, bp_reg bit, type bit,
/// type width, end bit or -128 for none), the `.orc_unwind_ip` address, its length, then both sections.
enum ORCTarget {
    static let target = FuzzTarget(name: "orc") { input in
        var input = input
        var layout = KernelLayout.ORCEntry()
        func signed(_ input: inout FuzzInput) -> Int { Int(Int8(bitPattern: input.u8())) }
        layout.size = signed(&input)
        layout.spOffset = signed(&input)
        layout.bpOffset = signed(&input)
        layout.flagsByte = signed(&input)
        layout.spRegisterBit = signed(&input)
        layout.bpRegisterBit = signed(&input)
        layout.typeBit = signed(&input)
        layout.typeWidth = signed(&input)
        let end = signed(&input)
        layout.endBit = end == -128 ? nil : end
        let ipAddress = input.u64()
        let ipLength = Int(input.u32() % 65_536)
        let ips = input.take(ipLength)
        let entries = input.rest()
        guard let orc = try? KernelORC(ipSection: ips, ipAddress: ipAddress, entrySection: entries, layout: layout) else { return }
        for probe in [0, ipAddress, ipAddress &+ 0x1000, UInt64.max] { _ = orc.entry(for: probe) }
    }
}
