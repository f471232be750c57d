import LeakAnalysis

/// How the export formats name a frame: its function when symbolized, else its module and
/// offset, else its address.
enum FrameNaming {
    /// "main", "libc.so.6+0x1a2b3" or "0x401136".
    static func name(_ frame: ReportFrame) -> String {
        if let function = frame.function, !function.isEmpty { return function }
        if let module = frame.module { return "\(basename(module))+0x\(String(frame.offset ?? frame.pc, radix: 16))" }
        return "0x\(String(frame.pc, radix: 16))"
    }

    /// A name that does not change with where the program was loaded: the function, else the
    /// module alone (an unsymbolized frame's address differs run to run under ASLR).
    /// With the source line when known: two calls from one function on different lines are
    /// different sites.
    static func stableName(_ frame: ReportFrame) -> String {
        var name: String
        if let function = frame.function, !function.isEmpty {
            name = function
        } else if let module = frame.module {
            name = basename(module)
        } else {
            return "?"
        }
        if let file = frame.file { name += "@\(basename(file)):\(frame.line ?? 0)" }
        return name
    }

    /// The last path component.
    static func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    /// The innermost frame that is the program's own code with a source file, else the first
    /// caller of the allocator, else the allocator's entry: the line a reader should look at.
    static func blameFrame(_ frames: [ReportFrame]) -> ReportFrame? {
        frames.dropFirst().first { $0.file != nil } ?? frames.dropFirst().first ?? frames.first
    }
}

/// FNV-1a, 64 bits: a stable hash for fingerprints (the same input gives the same value on
/// every run and host, unlike Swift's `Hasher`).
struct StableHash {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func combine(_ text: String) {
        for byte in text.utf8 {
            value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        value = (value ^ 0xff) &* 0x0000_0100_0000_01b3   // separator: "ab","c" differs from "a","bc"
    }

    var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
