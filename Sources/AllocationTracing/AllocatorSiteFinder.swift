import DebugInfo

/// Finds the allocator functions an ELF file defines (`.symtab` and `.dynsym` `STT_FUNC` symbols
/// with a catalogued name, ignoring any `@VERSION`, a section and a size; PLT imports are
/// undefined and never followed), one site per address, with the first instruction each starts with.
public enum AllocatorSiteFinder {
    /// The most bytes read for a first instruction: the x86 instruction length limit.
    public static let maximumInstructionLength = 15

    /// The allocator sites of the x86-64 ELF file at `path` (a host file).
    public static func sites(inFile path: String) throws(AllocationTrackingError) -> AllocatorSites {
        let file: ELFFile
        do { file = try ELFFile(path: path) } catch { throw .unreadableFile(error) }
        return try sites(in: file)
    }

    /// The allocator sites of an opened x86-64 ELF file.
    public static func sites(in file: ELFFile) throws(AllocationTrackingError) -> AllocatorSites {
        guard file.machine == 62, file.elfClass == .elf64 else {
            throw .unsupportedMachine(path: file.path, machine: file.machine, elfClass: file.elfClass)
        }
        var candidates: [UInt64: Candidate] = [:]
        for table in [ELFSymbolTableKind.symtab, .dynsym] {
            let entries: [ELFSymbolEntry]
            do { entries = try file.symbolEntries(in: table) } catch { throw .unreadableFile(error) }
            for entry in entries where entry.isDefined && entry.size > 0 && (entry.isFunction || entry.isIndirectFunction) {
                // A `.symtab` may spell versioned definitions `name@VERSION` / `name@@VERSION`.
                let name = String(entry.name.prefix { $0 != "@" })
                guard AllocatorSymbols.preference(of: name) != nil else { continue }
                candidates[entry.value, default: Candidate()].add(entry, name: name)
            }
        }
        var sites = AllocatorSites(armable: [], unarmable: [])
        for (address, candidate) in candidates.sorted(by: { $0.key < $1.key }) {
            let names = candidate.names.sorted { AllocatorSymbols.preference(of: $0)! < AllocatorSymbols.preference(of: $1)! }
            guard let symbol = names.first, let entryPoint = AllocatorSymbols.entryPoint(named: symbol) else { continue }
            let aliases = Array(names.dropFirst())
            func unarmable(_ reason: UnarmableAllocatorSite.Reason, fileOffset: UInt64?) {
                sites.unarmable.append(
                    UnarmableAllocatorSite(
                        symbol: symbol, aliases: aliases, entryPoint: entryPoint, address: address, fileOffset: fileOffset,
                        reason: reason))
            }
            guard let (segment, fileOffset) = location(of: address, in: file.loadSegments) else {
                unarmable(candidate.indirect ? .indirectFunction : .outsideLoadSegments, fileOffset: nil)
                continue
            }
            guard !candidate.indirect else {
                unarmable(.indirectFunction, fileOffset: fileOffset)
                continue
            }
            guard segment.isExecutable else {
                unarmable(.notExecutable, fileOffset: fileOffset)
                continue
            }
            let inSegment = segment.fileSize - (address - segment.virtualAddress)
            let count = Int(min(UInt64(maximumInstructionLength), inSegment, candidate.size))
            let bytes: [UInt8]
            do { bytes = try file.bytes(atFileOffset: fileOffset, count: count) } catch { throw .unreadableFile(error) }
            guard let instruction = PrologueInstruction.decode(bytes) else {
                unarmable(.unsupportedInstruction(bytes), fileOffset: fileOffset)
                continue
            }
            sites.armable.append(
                AllocatorSite(
                    symbol: symbol, aliases: aliases, entryPoint: entryPoint, address: address, fileOffset: fileOffset,
                    instruction: instruction, size: candidate.size))
        }
        return sites
    }

    /// The first `PT_LOAD` segment whose file contents hold `address`, and the address's file offset.
    static func location(of address: UInt64, in segments: [ELFProgramHeader]) -> (ELFProgramHeader, UInt64)? {
        for segment in segments where address >= segment.virtualAddress {
            let delta = address - segment.virtualAddress
            guard delta < segment.fileSize else { continue }
            let (offset, overflow) = segment.offset.addingReportingOverflow(delta)
            if !overflow { return (segment, offset) }
        }
        return nil
    }

    /// The catalogued symbols at one address.
    private struct Candidate {
        var names: Set<String> = []
        /// The smallest `st_size` among them, bounding the bytes read.
        var size: UInt64 = .max
        var indirect = false

        mutating func add(_ entry: ELFSymbolEntry, name: String) {
            names.insert(name)
            size = min(size, entry.size)
            indirect = indirect || entry.isIndirectFunction
        }
    }
}
