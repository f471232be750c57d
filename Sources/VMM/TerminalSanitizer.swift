/// Makes untrusted bytes (the guest's console, names read from the guest) safe to show on a
/// terminal: newline, tab and carriage return pass; every other C0 control and DEL is shown in
/// caret notation (`ESC` as `^[`), so no escape sequence reaches the terminal; invalid UTF-8 and
/// C1 controls (U+0080...U+009F, which some terminals obey) are shown as `\xNN` per byte; other
/// UTF-8 passes. Streams: a character split across chunks is held until its next bytes arrive.
public struct TerminalSanitizer: Sendable {
    /// The start of a UTF-8 sequence the last chunk ended in.
    private var pending: [UInt8] = []

    public init() {}

    /// The printable form of `bytes` (after whatever the previous chunk left pending).
    public mutating func sanitize(_ bytes: [UInt8]) -> [UInt8] {
        let input = pending + bytes
        pending = []
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var i = 0
        while i < input.count {
            let lead = input[i]
            if lead < 0x80 {
                Self.appendASCII(lead, to: &out)
                i += 1
                continue
            }
            let length = Self.sequenceLength(lead)
            var have = 1
            var valid = length > 0
            while valid && have < length && i + have < input.count {
                let next = input[i + have]
                let range = have == 1 ? Self.secondByteRange(lead) : 0x80...0xBF
                if range.contains(next) { have += 1 } else { valid = false }
            }
            if !valid {
                Self.appendHex(lead, to: &out)
                i += 1
            } else if have < length {
                pending = Array(input[i...])
                break
            } else {
                let sequence = input[i..<(i + length)]
                if lead == 0xC2 && input[i + 1] <= 0x9F {
                    sequence.forEach { Self.appendHex($0, to: &out) }
                } else {
                    out += sequence
                }
                i += length
            }
        }
        return out
    }

    /// Shows what is still pending (a stream that ended inside a character) as `\xNN`.
    public mutating func flush() -> [UInt8] {
        var out: [UInt8] = []
        pending.forEach { Self.appendHex($0, to: &out) }
        pending = []
        return out
    }

    /// The printable form of a whole text.
    public static func sanitize(_ text: String) -> String {
        var sanitizer = TerminalSanitizer()
        let bytes = sanitizer.sanitize(Array(text.utf8)) + sanitizer.flush()
        return String(decoding: bytes, as: UTF8.self)
    }

    /// JSON text with DEL and the C1 controls (which JSON may carry raw, and some terminals obey)
    /// written as `\u00XX` escapes: the same JSON value, safe to print. (Encoders already escape C0.)
    public static func escapingControls(json: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in json.unicodeScalars {
            if (0x7F...0x9F).contains(scalar.value) {
                out.append(contentsOf: "\\u00\(String(scalar.value, radix: 16))".unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    private static func appendASCII(_ byte: UInt8, to out: inout [UInt8]) {
        switch byte {
        case 0x0A, 0x09, 0x0D: out.append(byte)
        case 0x00..<0x20: out += [UInt8(ascii: "^"), byte + 0x40]
        case 0x7F: out += [UInt8(ascii: "^"), UInt8(ascii: "?")]
        default: out.append(byte)
        }
    }

    private static func appendHex(_ byte: UInt8, to out: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), digits[Int(byte >> 4)], digits[Int(byte & 0xF)]]
    }

    /// Bytes in the UTF-8 sequence `lead` starts, or 0 if it starts none.
    private static func sequenceLength(_ lead: UInt8) -> Int {
        switch lead {
        case 0xC2...0xDF: return 2
        case 0xE0...0xEF: return 3
        case 0xF0...0xF4: return 4
        default: return 0
        }
    }

    /// The second bytes that make a shortest-form, non-surrogate, at most U+10FFFF sequence.
    private static func secondByteRange(_ lead: UInt8) -> ClosedRange<UInt8> {
        switch lead {
        case 0xE0: return 0xA0...0xBF
        case 0xED: return 0x80...0x9F
        case 0xF0: return 0x90...0xBF
        case 0xF4: return 0x80...0x8F
        default: return 0x80...0xBF
        }
    }
}

/// The monitor's own text on a terminal: sanitised (it quotes names read from the guest) and
/// each line in bold, which guest console output can never be (its escape sequences are shown
/// as `^[`), so a line the guest prints cannot pass as the monitor's.
public enum MonitorTerminalText {
    public static let boldOn = "\u{1B}[1m"
    public static let boldOff = "\u{1B}[22m"

    public static func render(_ text: String) -> String {
        let clean = TerminalSanitizer.sanitize(text)
        var out = ""
        var first = true
        for line in clean.split(separator: "\n", omittingEmptySubsequences: false) {
            if !first { out += "\n" }
            first = false
            if !line.isEmpty { out += boldOn + line + boldOff }
        }
        return out
    }
}
