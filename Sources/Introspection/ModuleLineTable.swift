import DebugInfo
import Foundation

/// File:line for addresses of a loaded module, from the host's copy of its `.ko` with DWARF:
/// libdwfl lays the relocatable file out at a base of its own, and each run-time address is
/// moved into that layout through the section it lies in (section addresses from the guest's
/// `sect_attrs`). The host file is found by the module's name in `GuestKernel.moduleDirectories`
/// and used only when its GNU build ID is the one in the guest's memory (when the guest has it).
final class ModuleLineTable {
    let symbolizer: Symbolizer
    let layout: RelocatableLayout
    /// Run-time (section start, section name), sorted, for sections the layout has.
    let sections: [(address: UInt64, name: String)]

    /// Where module number `n` of a view is laid out: 4 GiB apart, in the lower half, far from
    /// the kernel's own addresses.
    static func base(forModuleNumber n: Int) -> UInt64 {
        0x100_0000_0000 &+ UInt64(truncatingIfNeeded: n) &* 0x1_0000_0000
    }

    init?(details: KernelModuleDetails, view: KernelView, base: UInt64) {
        guard let path = Self.hostFile(for: details.module.name, in: view.kernel.moduleDirectories),
              Self.buildIDMatches(path: path, details: details, view: view),
              let symbolizer = try? Symbolizer(),
              let layout = try? symbolizer.addRelocatableModule(name: details.module.name, hostPath: path, base: base) else { return nil }
        self.symbolizer = symbolizer
        self.layout = layout
        sections = details.sections.filter { layout.sections[$0.key] != nil && $0.value != 0 }
            .map { (address: $0.value, name: $0.key) }.sorted { $0.address < $1.address }
    }

    /// File and line of run-time address `pc` (already moved back into a call for return addresses).
    func location(of pc: UInt64) -> SymbolizedLocation? {
        var low = 0, high = sections.count
        while low < high {
            let mid = (low + high) / 2
            if sections[mid].address <= pc { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let section = sections[low - 1]
        guard let address = layout.address(section: section.name, offset: pc &- section.address) else { return nil }
        return symbolizer.symbolize(pc: address)
    }

    /// `NAME.ko` (or with dashes for underscores, as some module files are named) in `directories`.
    static func hostFile(for name: String, in directories: [String]) -> String? {
        let names = Set([name, name.replacingOccurrences(of: "_", with: "-")])
        for directory in directories {
            for candidate in names.sorted() {
                let path = (directory as NSString).appendingPathComponent(candidate + ".ko")
                if FileManager.default.isReadableFile(atPath: path) { return path }
            }
        }
        return nil
    }

    /// Whether the host file is the module the guest loaded: the GNU build ID note the guest
    /// keeps in memory (section `.note.gnu.build-id`) equals the file's. True when either side
    /// has none (nothing to compare).
    static func buildIDMatches(path: String, details: KernelModuleDetails, view: KernelView) -> Bool {
        guard let file = try? ELFFile(path: path) else { return false }
        guard let fileID = file.buildID, let note = details.sections[".note.gnu.build-id"],
              let header = try? view.bytes(note, 16, "build ID note") else { return true }
        let nameSize = Int(ModuleSymbolDecoder.u32(header, 0)), descriptorSize = Int(ModuleSymbolDecoder.u32(header, 4))
        guard nameSize == 4, descriptorSize == fileID.count, descriptorSize <= 64,
              let guestID = try? view.bytes(note &+ 16, descriptorSize, "build ID") else { return false }
        return guestID == fileID
    }
}
