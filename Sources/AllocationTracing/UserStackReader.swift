import GuestMemory
import X86

/// Reads the words of a user stack for one walk: each page is checked for user read access and
/// translated once, then its words are loaded from guest RAM directly (a walk of a dozen frames
/// touches one to three pages, instead of two page-table walks per word). A word that straddles
/// a page boundary is read the checked way. Use for one walk: a page freed meanwhile would not be
/// seen (the guest vCPU is stopped while the monitor walks its stack).
struct UserStackReader {
    let user: UserMemory
    private var pages: [(page: UInt64, frame: UInt64?)] = []

    init(_ user: UserMemory) {
        self.user = user
    }

    /// The 8 bytes at `address`, or nil where the thread itself could not read them.
    mutating func word(_ address: UInt64) -> UInt64? {
        let offset = address & 0xFFF
        guard offset <= 4096 - 8 else { return try? user.word(address) }
        let page = address & ~0xFFF
        let frame: UInt64?
        if let known = pages.first(where: { $0.page == page }) {
            frame = known.frame
        } else {
            frame = try? { () throws -> UInt64 in
                try user.check(page, count: 4096, .read)
                return try user.physicalAddress(of: page).rawValue
            }()
            if pages.count == 4 { pages.removeFirst() }
            pages.append((page, frame))
        }
        guard let frame else { return nil }
        return try? user.memory.load(UInt64.self, at: GuestPhysicalAddress(frame &+ offset))
    }
}
