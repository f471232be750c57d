import GuestInterface
import GuestMemory
import Introspection
import X86

extension PageCachePatcher {
    /// Puts back the breakpoints and hooks (only where they still are) and empties the table;
    /// returns what it did and the copies of the pages written into, for `comparePages` once
    /// everything else is restored. Waits for arming in progress. Call with the guest paused.
    func restore(_ guest: PausedGuest) -> (summary: ArmingSummary, pagesBefore: [GuestPhysicalAddress: [UInt8]]) {
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
        // Exitless entries: the entry's 2 bytes first (one store: no thread starts the path after
        // it), then the padding call and the hop, each only where it still holds what was written.
        for armed in exitlessSites {
            var state: BreakpointState?
            if let locator, case .success(let cached) = Self.cachedFrame(locator, mapping: armed.mapping, pageIndex: armed.pageIndex) {
                state = armed.state(cachedFrame: cached, memory: guest.memory)
            }
            let runs = armed.runs
            let entry = UInt16(runs[0].original[0]) | UInt16(runs[0].original[1]) << 8
            if state == .inPlace, (try? guest.memory.store(entry, at: runs[0].physical)) != nil {
                summary.bytesRestored += 2
                for run in runs.dropFirst() {
                    if (try? guest.memory.write(run.original, at: run.physical)) != nil { summary.bytesRestored += run.original.count }
                }
            } else {
                summary.bytesChangedByGuest += runs.reduce(0) { $0 + $1.written.count }
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
        return (summary, pagesBefore)
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
