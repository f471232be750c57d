import GDBRemote
import Testing
import X86

/// The GDB remote protocol's framing, stop replies and QEMU's x86-64 register block, with no stub.
@Suite struct GDBRemoteTests {
    @Test func framesAndChecksums() {
        #expect(GDBPacket.frame("g") == Array("$g#67".utf8))
        #expect(GDBPacket.frame("qSupported") == Array("$qSupported#37".utf8))
        // '#', '$', '}' and '*' are escaped as '}' followed by the byte xor 0x20.
        #expect(GDBPacket.frame("a#b") == Array("$a}\u{03}b#".utf8) + Array(String(format2(UInt8(("a}\u{03}b".utf8.reduce(0) { $0 &+ $1 })))).utf8))
    }

    func format2(_ value: UInt8) -> String { String(value, radix: 16).count == 1 ? "0" + String(value, radix: 16) : String(value, radix: 16) }

    @Test func scansPacketsAfterAcksAndNoise() throws {
        let bytes = Array("++$OK#9a$T05thread:p01.01;#".utf8)
        guard case .packet(let first, let used) = try GDBPacket.scan(bytes[...], limit: 100) else {
            Issue.record("no packet")
            return
        }
        #expect(first == "OK" && used == 8)
        // The second is incomplete until its checksum arrives.
        #expect(try GDBPacket.scan(bytes[used...], limit: 100) == .incomplete)
    }

    @Test func decodesEscapesAndRunLengths() throws {
        // "0* " is '0' repeated 3 more times (' ' is 32 = 29 + 3).
        let payload = Array("0* ".utf8)
        let sum = payload.reduce(UInt8(0)) { $0 &+ $1 }
        let bytes = Array("$".utf8) + payload + Array("#\(format2(sum))".utf8)
        #expect(try GDBPacket.scan(bytes[...], limit: 100) == .packet("0000", consumed: bytes.count))
        let escaped = Array("}\u{03}".utf8)
        let sum2 = escaped.reduce(UInt8(0)) { $0 &+ $1 }
        let bytes2 = Array("$".utf8) + escaped + Array("#\(format2(sum2))".utf8)
        #expect(try GDBPacket.scan(bytes2[...], limit: 100) == .packet("#", consumed: bytes2.count))
    }

    @Test func refusesBadChecksumsAndOversizedPackets() throws {
        #expect(throws: GDBRemoteError.self) { try GDBPacket.scan(Array("$OK#00".utf8)[...], limit: 100) }
        // A well-formed packet longer than the limit.
        let long = GDBPacket.frame("OKOKOK")
        #expect(throws: GDBRemoteError.self) { try GDBPacket.scan(long[...], limit: 2) }
        #expect(try GDBPacket.scan(long[...], limit: 6) == .packet("OKOKOK", consumed: long.count))
        // A run length with nothing to repeat.
        let bad = Array("* ".utf8)
        let sum = bad.reduce(UInt8(0)) { $0 &+ $1 }
        #expect(throws: GDBRemoteError.self) { try GDBPacket.scan((Array("$".utf8) + bad + Array("#\(format2(sum))".utf8))[...], limit: 100) }
    }

    @Test func parsesStopReplies() {
        #expect(GDBStopReply("T05thread:p01.02;") == .stopped(signal: 5, thread: "p01.02"))
        #expect(GDBStopReply("S02") == .stopped(signal: 2, thread: nil))
        #expect(GDBStopReply("W00") == .ended("W00"))
        #expect(GDBStopReply("OK") == nil)
        #expect(GDBStopReply("T") == nil)
    }

    /// The layout measured from QEMU 7.2's gdbstub: cr3 and efer where `info registers` put them.
    @Test func readsAndWritesQEMUsRegisterBlock() throws {
        var bytes = [UInt8](repeating: 0, count: QEMUX86Registers.byteCount)
        func put(_ value: UInt64, at offset: Int, size: Int = 8) {
            for i in 0..<size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        put(0x1111, at: 0); put(0x7777, at: 7 * 8); put(0xFFFF_FFFF_8100_0000, at: 128); put(0x246, at: 136, size: 4)
        put(0x10, at: 140, size: 4); put(0x18, at: 144, size: 4)
        put(0x34ce_f3c0, at: 164); put(0xFFFF_8BA2_5E00_0000, at: 172)
        put(0x8005_0033, at: 188); put(0x7FFC_DAF1_E084, at: 196); put(0x1FE4_0000, at: 204); put(0x6B0, at: 212); put(0xD01, at: 228)
        put(0xAAAA, at: 348)
        var registers = try QEMUX86Registers(bytes: bytes)
        #expect(registers.general.rax == 0x1111 && registers.general.rsp == 0x7777 && registers.general.rip == 0xFFFF_FFFF_8100_0000)
        #expect(registers.general.rflags == 0x246 && registers.privilegeLevel == 0 && registers.selector(.ss) == 0x18)
        #expect(registers.fsBase == 0x34ce_f3c0 && registers.gsBase == 0xFFFF_8BA2_5E00_0000)
        #expect(registers.cr0 == 0x8005_0033 && registers.cr2 == 0x7FFC_DAF1_E084 && registers.cr3 == 0x1FE4_0000)
        #expect(registers.cr4 == 0x6B0 && registers.efer == 0xD01 && registers.vectorWords.first == 0xAAAA)
        var general = registers.general
        general.rip = 0x40_1000
        general.rdi = 42
        registers.general = general
        registers.setSelector(.cs, 0x33)
        let again = try QEMUX86Registers(hex: registers.hex)
        #expect(again.general.rip == 0x40_1000 && again.general.rdi == 42 && again.privilegeLevel == 3 && again.cr3 == 0x1FE4_0000)
        #expect(throws: GDBRemoteError.self) { try QEMUX86Registers(bytes: [0, 1, 2]) }
        #expect(throws: GDBRemoteError.self) { try QEMUX86Registers(hex: "zz") }
    }
}
