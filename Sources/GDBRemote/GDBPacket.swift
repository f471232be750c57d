/// The framing of the GDB remote protocol: `$payload#xx` with a modulo-256 checksum, `}` escapes
/// and `*` run-length encoding in replies. Pure: no socket.
public enum GDBPacket {
    /// The bytes that send `payload` (escaping `#`, `$`, `}` and `*`).
    public static func frame(_ payload: String) -> [UInt8] {
        var body: [UInt8] = []
        for byte in payload.utf8 {
            if byte == UInt8(ascii: "#") || byte == UInt8(ascii: "$") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "*") {
                body += [UInt8(ascii: "}"), byte ^ 0x20]
            } else {
                body.append(byte)
            }
        }
        let sum = body.reduce(UInt8(0)) { $0 &+ $1 }
        return [UInt8(ascii: "$")] + body + [UInt8(ascii: "#")] + Array(hex2(sum).utf8)
    }

    /// Result of looking for one packet at the start of a receive buffer.
    public enum Scan: Equatable {
        /// Need more bytes.
        case incomplete
        /// A packet's decoded payload and how many buffer bytes it used (acks and noise before it included).
        case packet(String, consumed: Int)
    }

    /// Finds the first complete packet in `buffer`, skipping acknowledgements (`+`, `-`) and any
    /// noise before `$`; decodes escapes and run-length encoding, checks the checksum and bounds
    /// the payload to `limit` bytes.
    public static func scan(_ buffer: ArraySlice<UInt8>, limit: Int) throws(GDBRemoteError) -> Scan {
        guard let start = buffer.firstIndex(of: UInt8(ascii: "$")) else { return .incomplete }
        guard let hash = buffer[(start + 1)...].firstIndex(of: UInt8(ascii: "#")) else {
            if buffer.endIndex - start > limit * 2 + 4 { throw .malformed("no end of packet within \(limit) bytes") }
            return .incomplete
        }
        guard buffer.endIndex - hash >= 3 else { return .incomplete }
        let raw = buffer[(start + 1)..<hash]
        guard let expected = UInt8(String(decoding: buffer[(hash + 1)...(hash + 2)], as: UTF8.self), radix: 16) else {
            throw .malformed("checksum is not hexadecimal")
        }
        let sum = raw.reduce(UInt8(0)) { $0 &+ $1 }
        guard sum == expected else { throw .malformed("checksum \(hex2(expected)), computed \(hex2(sum))") }
        var payload: [UInt8] = []
        payload.reserveCapacity(raw.count)
        var index = raw.startIndex
        while index < raw.endIndex {
            let byte = raw[index]
            if byte == UInt8(ascii: "}") {
                guard index + 1 < raw.endIndex else { throw .malformed("escape at the end of a packet") }
                payload.append(raw[index + 1] ^ 0x20)
                index += 2
            } else if byte == UInt8(ascii: "*") {
                guard let last = payload.last, index + 1 < raw.endIndex, raw[index + 1] >= 29 else {
                    throw .malformed("run-length encoding without a byte to repeat")
                }
                payload += repeatElement(last, count: Int(raw[index + 1]) - 29)
                index += 2
            } else {
                payload.append(byte)
                index += 1
            }
            if payload.count > limit { throw .malformed("a packet longer than \(limit) bytes") }
        }
        return .packet(String(decoding: payload, as: UTF8.self), consumed: hash + 3 - buffer.startIndex)
    }

    static func hex2(_ value: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(value >> 4)], digits[Int(value & 15)]])
    }
}
