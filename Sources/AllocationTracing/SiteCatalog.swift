/// The allocator sites of host files, found once per file (`AllocatorSiteFinder`), and which of
/// them to arm: all, or only the C allocator's (C++ `new`/`delete` are then seen as the
/// `malloc`/`free` they call: fewer traps, no mismatch findings).
struct SiteCatalog: Sendable {
    /// Armable sites by host path (empty: none, or the file could not be read).
    private var byHostPath: [String: [AllocatorSite]] = [:]

    /// The sites of the host file `host` (a copy of the guest's `guestPath`) to arm, the C++
    /// operators' only with `includesOperators`; the first look at a file notes, through `note`,
    /// what cannot be armed in it.
    mutating func sites(inHostFile host: String, guestPath: String, includesOperators: Bool,
                        note: (String) -> Void) -> [AllocatorSite] {
        let all = allSites(inHostFile: host, guestPath: guestPath, note: note)
        return includesOperators ? all : all.filter { $0.entryPoint.function.family == .malloc }
    }

    private mutating func allSites(inHostFile host: String, guestPath: String, note: (String) -> Void) -> [AllocatorSite] {
        if let cached = byHostPath[host] { return cached }
        var found: [AllocatorSite] = []
        do {
            let result = try AllocatorSiteFinder.sites(inFile: host)
            found = result.armable
            for site in result.unarmable {
                note("\(guestPath): \(site.symbol) not armed: \(site.reason)")
            }
        } catch .unreadableFile(.notELF) {
            // A mapped data file (ld.so.cache, locale-archive): no code, nothing to arm or say.
        } catch {
            note("\(guestPath): cannot read its host copy \(host): \(error)")
        }
        byHostPath[host] = found
        return found
    }
}
