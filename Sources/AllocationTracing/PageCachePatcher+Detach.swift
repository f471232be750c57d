import GuestInterface
import GuestMemory
import Introspection
import X86

extension PageCachePatcher {
    /// Puts back the breakpoints and hooks (only where they still are) and the exitless entries'
    /// first bytes, and empties the table; returns what it did, the copies of the pages written
    /// into (for `comparePages` once everything else is restored), and the exitless entries whose
    /// padding is still to be put back. Waits for arming in progress. Call with the guest paused.
    func restore(_ guest: PausedGuest) -> (summary: ArmingSummary, pagesBefore: [GuestPhysicalAddress: [UInt8]], exitlessPadding: [ExitlessArmedSite]) {
        var summary = ArmingSummary()
        let (sites, hooks, pagesBefore, exitlessSites) = catalog.withLock { _ in
            table.withLock { t in
                defer { t = BreakpointTable() }
                return (Array(t.sites.values), Array(t.hooks.values), t.pagesBefore, Array(t.exitless.values))
            }
        }
        // A breakpoint's byte is put back only where the breakpoint still is: in the frame the
        // file's page cache still holds at that index, still our `int3`. Anything else may be
        // another page by now and is left alone.
        let locator = (try? KernelView(kernel: kernel, memory: guest.memory, vcpus: guest.vcpus))
            .flatMap { try? PageCacheLocator(view: $0) }
        for site in sites {
            let byte = (try? guest.memory.read(at: site.physical, count: 1))?.first
            var state: BreakpointState?
            if let locator, case .success(let cached) = Self.cachedFrame(locator, site) {
                state = site.state(cachedFrame: cached, byte: byte)
            }
            if state == .inPlace, (try? guest.memory.write([site.original], at: site.physical)) != nil {
                summary.bytesRestored += 1
            } else {
                summary.bytesChangedByGuest += 1
                let why = state.map { "\($0)" } ?? "its page cache could not be read"
                summary.notes.append("\(site.guestPath): \(site.site.symbol) at frame \(hex(site.frame.rawValue)) not restored: \(why)")
            }
        }
        // Exitless entries: only the entry's 2 bytes now (one store: no thread starts the path
        // after it). Their padding runs are put back once no thread is on the path
        // (`restoreExitlessPadding`): a thread stopped between the entry and its stub still needs them.
        var padding: [ExitlessArmedSite] = []
        for armed in exitlessSites {
            var state: BreakpointState?
            if let locator, case .success(let cached) = Self.cachedFrame(locator, mapping: armed.mapping, pageIndex: armed.pageIndex) {
                state = armed.state(cachedFrame: cached, memory: guest.memory)
            }
            if state == .inPlace, (try? armed.storeEntry(armed.runs[0].original, memory: guest.memory)) != nil {
                summary.bytesRestored += armed.runs[0].original.count
                padding.append(armed)
            } else {
                summary.bytesChangedByGuest += armed.runs.reduce(0) { $0 + $1.written.count }
                let why = state.map { "\($0)" } ?? "its page cache could not be read"
                summary.notes.append("\(armed.guestPath): \(armed.site.symbol) (exitless) at frame \(hex(armed.frame.rawValue)) not restored: \(why)")
            }
        }
        for note in summary.notes { notes.add("detach: " + note) }
        for hook in hooks {
            if (try? guest.memory.read(at: hook.physical, count: 2)) == KernelHookPort.instruction,
               (try? guest.memory.write(hook.original, at: hook.physical)) != nil {
                summary.bytesRestored += 2
            } else {
                summary.bytesChangedByGuest += 2
            }
        }
        return (summary, pagesBefore, padding)
    }

    /// Puts back the padding runs of exitless entries whose first bytes `restore` put back (each
    /// run only where it still holds what was written, in a frame that is still the file's page).
    static func restoreExitlessPadding(_ sites: [ExitlessArmedSite], memory: GuestMemory, into summary: inout ArmingSummary) {
        for armed in sites {
            for run in armed.runs.dropFirst() {
                if (try? memory.read(at: run.physical, count: run.written.count)) == run.written,
                   (try? memory.write(run.original, at: run.physical)) != nil {
                    summary.bytesRestored += run.original.count
                } else {
                    summary.bytesChangedByGuest += run.written.count
                }
            }
        }
    }

    /// Compares each page written into with its copy from before the first write.
    static func comparePages(_ pagesBefore: [GuestPhysicalAddress: [UInt8]], in memory: GuestMemory,
                             into summary: inout ArmingSummary) {
        for (page, before) in pagesBefore {
            summary.pagesCompared += 1
            if (try? memory.read(at: page, count: before.count)) == before { summary.pagesIdentical += 1 }
        }
    }
}
