/// A small encoder for the ACPI Machine Language terms the DSDT needs (ACPI 6, §20.2).
enum AML {
    static let nameOp: UInt8 = 0x08
    static let scopeOp: UInt8 = 0x10
    static let bufferOp: UInt8 = 0x11
    static let stringPrefix: UInt8 = 0x0D
    static let bytePrefix: UInt8 = 0x0A
    static let wordPrefix: UInt8 = 0x0B
    static let dwordPrefix: UInt8 = 0x0C
    static let deviceOp: [UInt8] = [0x5B, 0x82]
    static let rootPrefix = UInt8(ascii: "\\")

    /// PkgLength for a package whose contents after the PkgLength are `bodyLength` bytes; the
    /// encoded length counts its own 1–4 bytes.
    static func pkgLength(bodyLength: Int) -> [UInt8] {
        if bodyLength + 1 <= 0x3F { return [UInt8(bodyLength + 1)] }
        for count in 2...4 {
            let total = bodyLength + count
            guard total < 1 << (4 + 8 * (count - 1)) else { continue }
            var bytes = [UInt8(count - 1) << 6 | UInt8(total & 0xF)]
            for i in 0..<(count - 1) { bytes.append(UInt8(truncatingIfNeeded: total >> (4 + 8 * i))) }
            return bytes
        }
        preconditionFailure("AML package of \(bodyLength) bytes is too large")
    }

    /// A NameSeg: up to four characters, padded with '_'.
    static func nameSeg(_ name: String) -> [UInt8] {
        let bytes = Array(name.utf8)
        precondition(bytes.count <= 4 && !bytes.isEmpty, "bad NameSeg \(name)")
        return bytes + [UInt8](repeating: UInt8(ascii: "_"), count: 4 - bytes.count)
    }

    /// `\NAME` or `NAME` (single segment).
    static func nameString(_ name: String) -> [UInt8] {
        name.hasPrefix("\\") ? [rootPrefix] + nameSeg(String(name.dropFirst())) : nameSeg(name)
    }

    static func integer(_ value: UInt64) -> [UInt8] {
        switch value {
        case 0, 1: return [UInt8(value)]                    // ZeroOp, OneOp
        case ...0xFF: return [bytePrefix, UInt8(value)]
        case ...0xFFFF: return [wordPrefix] + littleEndian(value, 2)
        case ...0xFFFF_FFFF: return [dwordPrefix] + littleEndian(value, 4)
        default: return [0x0E] + littleEndian(value, 8)     // QWordPrefix
        }
    }

    static func string(_ s: String) -> [UInt8] { [stringPrefix] + Array(s.utf8) + [0] }

    static func name(_ name: String, _ data: [UInt8]) -> [UInt8] { [nameOp] + nameString(name) + data }

    static func buffer(_ bytes: [UInt8]) -> [UInt8] {
        let body = integer(UInt64(bytes.count)) + bytes
        return [bufferOp] + pkgLength(bodyLength: body.count) + body
    }

    static func scope(_ name: String, _ terms: [UInt8]) -> [UInt8] {
        let body = nameString(name) + terms
        return [scopeOp] + pkgLength(bodyLength: body.count) + body
    }

    static func device(_ name: String, _ terms: [UInt8]) -> [UInt8] {
        let body = nameString(name) + terms
        return deviceOp + pkgLength(bodyLength: body.count) + body
    }

    /// A ResourceTemplate: the descriptors, an End Tag with checksum 0, as a Buffer.
    static func resourceTemplate(_ descriptors: [UInt8]) -> [UInt8] { buffer(descriptors + [0x79, 0x00]) }

    /// Memory32Fixed(ReadWrite, base, length).
    static func memory32Fixed(base: UInt32, length: UInt32) -> [UInt8] {
        [0x86, 0x09, 0x00, 0x01] + littleEndian(UInt64(base), 4) + littleEndian(UInt64(length), 4)
    }

    /// Interrupt(ResourceConsumer, Level, ActiveHigh, Exclusive) {gsi}.
    static func levelInterrupt(gsi: UInt32) -> [UInt8] {
        [0x89, 0x06, 0x00, 0x01, 0x01] + littleEndian(UInt64(gsi), 4)
    }

    static func littleEndian(_ v: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
    }
}
