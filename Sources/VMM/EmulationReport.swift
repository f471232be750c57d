import CKVM

/// Human-readable report of an instruction the host could not run: RIP, bytes, a guess at the
/// instruction, and a register dump.
enum EmulationReport {
    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 16 - s.count)) + s
    }

    /// Names a few instruction families known to be unsupported by the CPL0 emulator.
    static func guess(_ b: [UInt8]) -> String? {
        var i = 0
        while i < b.count, [0x66, 0xF2, 0xF3, 0xF0].contains(b[i]) || (b[i] & 0xF0) == 0x40 { i += 1 }
        guard i + 2 < b.count else { return nil }
        let (o0, o1, modrm) = (b[i], b[i + 1], b[i + 2])
        let reg = (modrm >> 3) & 7
        if o0 == 0x0F && o1 == 0xC7 && reg == 1 { return "cmpxchg8b/16b" }
        if o0 == 0x0F && o1 == 0xAE {
            switch reg {
            case 2: return "ldmxcsr"
            case 3: return "stmxcsr"
            case 4: return "xsave"
            case 5: return "xrstor"
            default: return nil
            }
        }
        if o0 == 0x0F && o1 == 0x01 && modrm == 0xCA { return "clac" }
        if o0 == 0x0F && o1 == 0x01 && modrm == 0xCB { return "stac" }
        if o0 == 0x0F && o1 == 0x01 && modrm == 0xD0 { return "xgetbv" }
        if o0 == 0x0F && o1 == 0xB8 { return "popcnt" }
        if b[0] == 0xC4 || b[0] == 0xC5 || b[0] == 0x62 { return "VEX/EVEX-encoded instruction" }
        return nil
    }

    static func describe(suberror: UInt32, data: [UInt64], bytes: [UInt8], regs: kvm_regs, sregs: kvm_sregs, vcpu: Int) -> String {
        let byteText = bytes.isEmpty ? "(not reported)" : bytes.map { String(format2($0)) }.joined(separator: " ")
        var s = "vCPU \(vcpu): the host could not execute a guest instruction (KVM internal error \(suberror))\n"
        s += "  rip \(hex(regs.rip)) cpl \(sregs.cs.dpl)  bytes: \(byteText)"
        if let g = guess(bytes) { s += "  (\(g))" }
        s += "\n  rax \(hex(regs.rax)) rbx \(hex(regs.rbx)) rcx \(hex(regs.rcx)) rdx \(hex(regs.rdx))\n"
        s += "  rsi \(hex(regs.rsi)) rdi \(hex(regs.rdi)) rbp \(hex(regs.rbp)) rsp \(hex(regs.rsp))\n"
        s += "  r8  \(hex(regs.r8)) r9  \(hex(regs.r9)) r10 \(hex(regs.r10)) r11 \(hex(regs.r11))\n"
        s += "  r12 \(hex(regs.r12)) r13 \(hex(regs.r13)) r14 \(hex(regs.r14)) r15 \(hex(regs.r15))\n"
        s += "  rflags \(hex(regs.rflags)) cr0 \(hex(sregs.cr0)) cr3 \(hex(sregs.cr3)) cr4 \(hex(sregs.cr4)) efer \(hex(sregs.efer))"
        if !data.isEmpty { s += "\n  kvm data: " + data.map { hex($0) }.joined(separator: " ") }
        return s
    }

    private static func format2(_ b: UInt8) -> String {
        let s = String(b, radix: 16)
        return s.count == 1 ? "0" + s : s
    }
}
