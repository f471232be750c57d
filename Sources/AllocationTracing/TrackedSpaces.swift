import X86

/// How tracking stands per address space, beyond its calls and its ledger.
struct TrackedSpaces: Sendable, Codable {
    /// Address spaces that existed before arming: their releases of blocks allocated earlier are
    /// not findings.
    var preexisting = Set<PageTableRoot>()
    /// Address spaces whose tracking ended after an unexpected failure (noted in `diagnostics`).
    var abandoned = Set<PageTableRoot>()
    /// Address spaces with a trampoline fault noted already (one note each).
    var trampolineNoted = Set<PageTableRoot>()

    /// Whether the ledger saw this address space from its start (so an unknown release is a finding).
    func isStrict(_ root: PageTableRoot) -> Bool { !preexisting.contains(root) }

    /// Forgets an address space torn down.
    mutating func forget(_ root: PageTableRoot) {
        preexisting.remove(root)
        abandoned.remove(root)
        trampolineNoted.remove(root)
    }
}
