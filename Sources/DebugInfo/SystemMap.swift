/// A Linux `System.map` (or `/proc/kallsyms`) file parsed into a symbol table: lines of the form
/// `ffffffff81000000 T _text` (kallsyms may add a `[module]` column). Blank lines are skipped; lines
/// that do not parse are ignored and counted.
public struct SystemMap: Sendable {
    /// The largest file `init(path:)` reads (256 MiB; a System.map is a few MiB).
    public static let maximumFileSize: UInt64 = 256 << 20

    public let table: SymbolTable
    /// Number of non-blank lines that were not `ADDRESS TYPE NAME`.
    public let malformedLineCount: Int

    /// Parses System.map text.
    public init(text: String) {
        var symbols: [Symbol] = []
        var malformed = 0
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard !fields.isEmpty else { continue }
            if let symbol = Self.symbol(fields) { symbols.append(symbol) } else { malformed += 1 }
        }
        table = SymbolTable(symbols)
        malformedLineCount = malformed
    }

    /// Reads and parses the System.map file at `path`.
    public init(path: String) throws(DebugInfoError) {
        let bytes = try readHostFile(path: path, limit: Self.maximumFileSize)
        self.init(text: String(decoding: bytes, as: UTF8.self))
    }

    private static func symbol(_ fields: [Substring]) -> Symbol? {
        guard fields.count == 3 || (fields.count == 4 && fields[3].hasPrefix("[") && fields[3].hasSuffix("]")),
            fields[0].count <= 16, let address = UInt64(fields[0], radix: 16),
            fields[1].count == 1, let letter = fields[1].first, letter.isASCII, letter.isLetter
        else { return nil }
        let (kind, binding) = classify(letter)
        return Symbol(name: String(fields[2]), address: address, size: 0, kind: kind, binding: binding)
    }

    /// The `nm` type letter's meaning: upper case is global, lower case local. Also used for the
    /// type letters of the kernel's kallsyms table.
    public static func classify(_ letter: Character) -> (SymbolKind, SymbolBinding) {
        switch letter {
        case "W", "w": return (.function, .weak)
        case "V", "v": return (.object, .weak)
        default: break
        }
        let binding: SymbolBinding = letter.isUppercase ? .global : .local
        switch letter.lowercased() {
        case "t": return (.function, binding)
        case "d", "b", "r", "g", "s": return (.object, binding)
        default: return (.other, binding)
        }
    }
}
