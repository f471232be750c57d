import DebugInfo
import Foundation

/// Where the host keeps the files a guest maps, for symbols and DWARF: files placed in the guest
/// by path (`--add HOST:GUEST`), directories laid out like the guest's root (the default image's
/// rootfs, `--symbols DIR`), and guest paths that hold copies of the host's own files (shared
/// libraries bundled with `--add`).
///
/// Guest paths come from the guest. One is looked up only after `GuestPath.normalized` (absolute,
/// no NUL, no `..` above `/`), and a host file is used only if, with its symlinks resolved, it is
/// still inside the root (or host-copy prefix) it was found under.
public struct GuestSymbolFiles: Sendable {
    public var explicit: [String: String]
    public var roots: [String]
    /// Guest path prefixes whose files were copied from the same host path.
    public var hostCopies: [String]

    public init(explicit: [String: String] = [:], roots: [String] = [], hostCopies: [String] = []) {
        self.explicit = explicit
        self.roots = roots
        self.hostCopies = hostCopies
    }

    /// The host file for a guest path, if one is known.
    public func hostPath(forGuest path: String) -> String? {
        if let host = explicit[path] { return host }
        guard let guestPath = GuestPath.normalized(path) else { return nil }
        for root in roots where !root.isEmpty {
            for candidate in SymbolSearchPath(directories: [root]).candidates(forGuestPath: guestPath) {
                if let file = GuestPath.regularFile(candidate, confinedTo: root) { return file }
            }
        }
        for prefix in hostCopies where guestPath.hasPrefix(prefix) {
            if let file = GuestPath.regularFile(guestPath, confinedTo: prefix),
               FileManager.default.isReadableFile(atPath: file) { return file }
        }
        return nil
    }

    /// Where separate debug files are looked up by build ID: `usr/lib/debug` under each root
    /// (a `--symbols` tree with Debian's `-dbgsym` packages unpacked in it), and the host's own
    /// `/usr/lib/debug` when guest files are copies of the host's.
    public var debugDirectories: [String] {
        roots.filter { !$0.isEmpty }.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/usr/lib/debug" }
            + (hostCopies.isEmpty ? [] : ["/usr/lib/debug"])
    }

    /// A symbolizer that finds separate debug files in `debugDirectories`.
    public func makeSymbolizer() throws(DebugInfoError) -> Symbolizer {
        try Symbolizer(debugDirectories: debugDirectories)
    }

    /// Adds every ELF file of `mappings` that has a host copy to `symbolizer`, at the load bias
    /// its first mapping gives, once per file.
    public func addModules(of mappings: [GuestMapping], to symbolizer: Symbolizer) {
        var done: Set<String> = []
        for mapping in mappings where mapping.path.hasPrefix("/") && mapping.fileOffset == 0 {
            guard done.insert(mapping.path).inserted, let host = hostPath(forGuest: mapping.path),
                  let elf = try? ELFFile(path: host), let bias = elf.loadBias(mappingStart: mapping.start) else { continue }
            _ = try? symbolizer.addModule(name: mapping.path, hostPath: host, loadBias: bias)
        }
    }
}
