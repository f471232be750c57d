import BTF
import DebugInfo
import Foundation

extension GuestKernel {
    /// Reads what introspection needs from the guest kernel's ELF image (the default image's
    /// vmlinux, or one given with --kernel): kallsyms from its loaded segments (Debian's vmlinux
    /// has no symbol table) and structure layouts from its `.BTF` section. `symbolFile` replaces
    /// kallsyms with a System.map or an ELF symbol table; an ELF with DWARF (the -dbg package's
    /// vmlinux) also gives kernel frames file:line. Loaded modules' `.ko` files are looked up in
    /// `moduleDirectories`, by default the `modules/` directory beside the vmlinux (the image's).
    public static func load(vmlinux path: String, symbolFile: String? = nil,
                            moduleDirectories: [String]? = nil) throws(IntrospectionError) -> GuestKernel {
        DebugInfo.ensureLibraryInitialised()
        let elf: ELFFile
        do { elf = try ELFFile(path: path) } catch { throw .kernelFile(path: path, error) }
        let symbols: KernelSymbols
        var debugFile: String?
        if let symbolFile {
            (symbols, debugFile) = try loadSymbolFile(symbolFile)
        } else {
            let (image, low) = try loadedImage(elf, path: path)
            do { symbols = KernelSymbols(kallsyms: try Kallsyms.locate(in: image, base: low)) } catch {
                throw .kernelSymbols(path: path, error)
            }
        }
        let section: ELFSection?
        do { section = try elf.section(named: ".BTF") } catch { throw .kernelFile(path: path, error) }
        guard let btfBytes = section?.bytes else {
            throw .kernelImage("\(path) has no .BTF section (kernel built without CONFIG_DEBUG_INFO_BTF)")
        }
        do {
            let layout = try KernelLayout(btf: try BTF(data: btfBytes))
            let directories = moduleDirectories
                ?? [URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("modules").path]
            return GuestKernel(symbols: symbols, layout: layout, debugFile: debugFile,
                               orc: try? loadORC(elf, layout: layout), moduleDirectories: directories)
        } catch {
            throw .layout(error)
        }
    }

    /// An ELF symbol table (and its DWARF, if any) or a System.map text file.
    static func loadSymbolFile(_ path: String) throws(IntrospectionError) -> (KernelSymbols, String?) {
        let table: SymbolTable
        var debugFile: String?
        if let elf = try? ELFFile(path: path) {
            do { table = try elf.symbolTable() } catch { throw .kernelFile(path: path, error) }
            debugFile = (try? elf.section(named: ".debug_line")) != nil ? path : nil
        } else {
            do { table = try SystemMap(path: path).table } catch { throw .kernelFile(path: path, error) }
        }
        // Debian's own System.map is a one-line stub pointing at the -dbg package.
        guard table.count >= 1000 else {
            throw .kernelImage("\(path) holds only \(table.count) symbols (a stub System.map?); give the -dbg package's System.map or vmlinux")
        }
        return (KernelSymbols(table: table), debugFile)
    }

    /// `.orc_unwind_ip` + `.orc_unwind`; nil (stack scan instead) when absent or malformed.
    static func loadORC(_ elf: ELFFile, layout: KernelLayout) throws -> KernelORC? {
        guard let entryLayout = layout.orc, let ips = try elf.section(named: ".orc_unwind_ip"),
              let entries = try elf.section(named: ".orc_unwind") else { return nil }
        return try KernelORC(ipSection: ips.bytes, ipAddress: ips.address, entrySection: entries.bytes, layout: entryLayout)
    }

    /// The vmlinux's kernel-half loaded segments laid out at their link-time virtual addresses
    /// (the memory image kallsyms is decoded from), and the address of its first byte.
    public static func loadedImage(vmlinux path: String) throws(IntrospectionError) -> (image: [UInt8], base: UInt64) {
        DebugInfo.ensureLibraryInitialised()
        let elf: ELFFile
        do { elf = try ELFFile(path: path) } catch { throw .kernelFile(path: path, error) }
        return try loadedImage(elf, path: path)
    }

    static func loadedImage(_ elf: ELFFile, path: String) throws(IntrospectionError) -> (image: [UInt8], base: UInt64) {
        guard let data = FileManager.default.contents(atPath: path) else { throw .kernelImage("\(path) is not readable") }
        let file = [UInt8](data)
        // Kernel-half segments only (x86-64 vmlinux also has a per-CPU segment at address 0).
        let segments = elf.loadSegments.filter { $0.virtualAddress >= 0xFFFF_8000_0000_0000 }
        return try loadedImage(segments: segments.map { ($0.offset, $0.virtualAddress, $0.fileSize) }, file: file, path: path)
    }

    /// Lays out kernel-half segments (file offset, virtual address, file size) of `file` at their
    /// virtual addresses. The values come from the image's program headers: a segment outside the
    /// file, one that wraps past 2^64 or an image over 1 GiB is an error.
    static func loadedImage(segments: [(offset: UInt64, virtualAddress: UInt64, fileSize: UInt64)], file: [UInt8],
                            path: String) throws(IntrospectionError) -> (image: [UInt8], base: UInt64) {
        for s in segments {
            guard s.offset <= UInt64(file.count), s.fileSize <= UInt64(file.count) - s.offset else {
                throw .kernelImage("\(path): a segment lies outside the file")
            }
            guard s.virtualAddress.addingReportingOverflow(s.fileSize).overflow == false else {
                throw .kernelImage("\(path): a segment wraps past the top of the address space")
            }
        }
        guard let low = segments.map(\.virtualAddress).min(),
              let high = segments.map({ $0.virtualAddress + $0.fileSize }).max(), high > low, high - low < 1 << 30 else {
            throw .kernelImage("\(path) has no kernel segments (is it a bzImage? introspection needs the ELF vmlinux)")
        }
        var image = [UInt8](repeating: 0, count: Int(high - low))
        for s in segments {
            let (start, size, at) = (Int(s.offset), Int(s.fileSize), Int(s.virtualAddress - low))
            image.replaceSubrange(at..<at + size, with: file[start..<start + size])
        }
        return (image, low)
    }
}
