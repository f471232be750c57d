import DebugInfo
import Introspection
import Reachability
import X86

/// Finds libc's `exit` in a guest process (for `ExitFrame`): the `exit` function symbol of a file it
/// maps (`.symtab`, else `.dynsym`: a stripped `libc.so.6` still exports it), from the host copy of
/// the file (`GuestSymbolFiles`), placed at the mapping's load bias. The guest's bytes there must
/// be the host copy's (another build of the file is not trusted); the prologue is decoded from them.
struct ExitFunctionLocator: Sendable {
    let files: GuestSymbolFiles
    /// `exit`'s link-time address, size and first bytes per host file (nil: the file has none).
    var symbols: [String: ExitSymbol?] = [:]

    struct ExitSymbol: Sendable {
        var value: UInt64
        var size: UInt64
        var code: [UInt8]
        var programHeaders: [ELFProgramHeader]
    }

    /// The most bytes of `exit` compared and decoded.
    static let codeBytes = 32

    /// Where `exit` is in a process with these mappings, if any of its files defines it.
    mutating func exitFrame(mappings: [GuestMapping], space: AddressSpace) -> ExitFrame? {
        for m in mappings where m.fileObject != 0 && m.fileOffset == 0 && m.path.hasPrefix("/") {
            guard let host = files.hostPath(forGuest: m.path) else { continue }
            if symbols[host] == nil { symbols[host] = .some(Self.exitSymbol(inFile: host)) }
            guard let found = symbols[host], let symbol = found,
                  let bias = symbol.programHeaders.loadBias(mappingStart: m.start) else { continue }
            let address = symbol.value &+ bias
            guard let code = try? space.read(GuestVirtualAddress(address), count: symbol.code.count), code == symbol.code,
                  let range = Range.ordered(address, address.addingSaturated(symbol.size)) else { continue }
            return ExitFrame(exitCode: range, prologueBytes: FunctionPrologue.stackBytes(code))
        }
        return nil
    }

    /// The defined `exit` function of an x86-64 ELF file, with its first bytes.
    static func exitSymbol(inFile path: String) -> ExitSymbol? {
        guard let file = try? ELFFile(path: path), file.machine == 62 else { return nil }
        for table in [ELFSymbolTableKind.symtab, .dynsym] {
            guard let entries = try? file.symbolEntries(in: table) else { continue }
            for entry in entries where entry.isDefined && entry.isFunction && entry.size > 0 && entry.size < 1 << 16
                && entry.name.prefix(while: { $0 != "@" }) == "exit" {
                for segment in file.loadSegments where entry.value >= segment.virtualAddress {
                    let delta = entry.value - segment.virtualAddress
                    guard delta < segment.fileSize else { continue }
                    let count = Int(min(UInt64(codeBytes), entry.size, segment.fileSize - delta))
                    let (offset, overflow) = segment.offset.addingReportingOverflow(delta)
                    guard !overflow, let code = try? file.bytes(atFileOffset: offset, count: count) else { continue }
                    return ExitSymbol(value: entry.value, size: entry.size, code: code, programHeaders: file.programHeaders)
                }
            }
        }
        return nil
    }
}
